// The single executable: built by `bun run compile`, copied alone into an empty
// directory and run with no Bun on PATH and no build tree to lean on.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { probeLevel } from "../src/cpu-level";
import { TINY_MODEL_PATH } from "../src/models/synthetic";
import { clientFor, type ServerProcess, startServerProcess } from "./server-process";

const ROOT = join(import.meta.dir, "..");
let dir: string;
let exe: string;
let env: Record<string, string>;

beforeAll(() => {
  const built = Bun.spawnSync([process.execPath, join(ROOT, "scripts", "compile.ts")], {
    stdout: "pipe",
    stderr: "pipe",
  });
  if (built.exitCode !== 0) throw new Error(`compile failed:\n${built.stderr.toString()}`);
  dir = mkdtempSync(join(tmpdir(), "llmatic-exe-"));
  exe = join(dir, "llmatic");
  copyFileSync(join(ROOT, "dist", "llmatic"), exe);
  copyFileSync(TINY_MODEL_PATH, join(dir, "tiny.gguf"));
  mkdirSync(join(dir, "tmp"));
  // nothing on PATH (no bun), a private HOME and TMPDIR
  env = { PATH: join(dir, "no-bin"), HOME: dir, TMPDIR: join(dir, "tmp"), LLMATIC_CACHE: join(dir, "cache") };
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const clean = (extra: Record<string, string> = {}) => ({ ...env, ...extra }) as Record<string, string>;

/** dist/llmatic serving the tiny model, with nothing of this process's environment but `extra` */
const startExe = (
  extra: Record<string, string> = {},
  opts: { args?: string[]; cmd?: string[]; timeoutMs?: number } = {},
): Promise<ServerProcess> =>
  startServerProcess(["-m", join(dir, "tiny.gguf"), ...(opts.args ?? [])], {
    cmd: opts.cmd ?? [exe],
    cwd: dir,
    env: clean(extra),
    cleanEnv: true,
    timeoutMs: opts.timeoutMs,
  });

/** the completion tokens of one chat of `maxTokens` tokens */
async function chatTokens(s: ServerProcess, content: string, maxTokens: number): Promise<number | undefined> {
  const r = await clientFor(s).chat.completions.create({
    model: "tiny",
    messages: [{ role: "user", content }],
    max_tokens: maxTokens,
  });
  return r.usage?.completion_tokens;
}

describe("dist/llmatic", () => {
  test("--help works without bun", () => {
    const p = Bun.spawnSync([exe, "--help"], { cwd: dir, env: clean(), stdout: "pipe", stderr: "pipe" });
    expect(p.exitCode).toBe(0);
    expect(p.stdout.toString()).toContain("--model");
    expect(p.stdout.toString()).toContain("--parallel");
  });

  test("serves a model and answers a chat through the official client; the library is extracted once", async () => {
    const libs = () => readdirSync(join(dir, "tmp"), { recursive: true }).filter((f) => String(f).endsWith(".so"));
    const starts: ServerProcess[] = [];
    try {
      const s1 = await startExe();
      starts.push(s1);
      const client = clientFor(s1);
      const r = await client.chat.completions.create({
        model: "tiny",
        messages: [{ role: "user", content: "Hello from the executable" }],
        max_tokens: 6,
      });
      expect(r.choices[0]?.finish_reason).toBe("length");
      expect(r.usage?.completion_tokens).toBe(6);
      const docs = await fetch(`${s1.url}/docs/assets/swagger-ui-bundle.js`);
      expect(docs.status).toBe(200);
      // a browser's request (clients that probe the root without asking for HTML get Ollama's answer)
      const page = await (await fetch(`${s1.url}/`, { headers: { accept: "text/html" } })).text();
      expect(page).toContain("llmatic");
      expect(await s1.stop()).toBe(0);
      starts.length = 0;

      // under TMPDIR: the CPU probe and the one library for this CPU's level; a
      // second start reuses the same copies
      const first = libs();
      expect(first).toHaveLength(2);
      expect(first.filter((f) => /libllmatic-cpu-/.test(String(f)))).toHaveLength(1);
      const levelLib = first.find((f) => /libllmatic-x86-64-v[234]-/.test(String(f)));
      expect(levelLib).toBeDefined();
      const file = join(dir, "tmp", String(levelLib));
      const mtime = statSync(file).mtimeMs;
      const s2 = await startExe();
      starts.push(s2);
      expect(libs().sort()).toEqual(first.sort());
      expect(statSync(file).mtimeMs).toBe(mtime);
      // the directory is private; the model's engine runs in its own process of the executable
      expect(statSync(join(file, "..")).mode & 0o777).toBe(0o700);
      const h = (await (await fetch(`${s2.url}/health`)).json()) as { models: { pid: number }[] };
      expect(h.models[0]?.pid).toBeGreaterThan(0);
      expect(h.models[0]?.pid).not.toBe(s2.proc.pid);
      expect(await s2.stop()).toBe(0);
      starts.length = 0;

      // a copy of the same size but other content is not trusted: it is written again
      const good = readFileSync(file);
      const bad = Buffer.alloc(good.length, 0x90);
      writeFileSync(file, bad);
      const s3 = await startExe();
      starts.push(s3);
      expect(readFileSync(file).equals(good)).toBe(true);
      expect(await chatTokens(s3, "again", 2)).toBe(2);
    } finally {
      for (const s of starts) await s.stop();
    }
  }, 120_000);

  test("it loads the library built for the best x86-64 level the CPU runs; LLMATIC_CPU_LEVEL picks a lower one, never a higher one", async () => {
    const level = probeLevel(join(ROOT, "native", "lib", "cpu", "libllmatic-cpu.so"));
    expect(level).toBeGreaterThanOrEqual(2);
    const best = `x86-64-v${Math.min(level, 4)}`;
    const s = await startExe();
    try {
      expect(s.output()).toContain(`ggml's CPU kernels built for ${best}`);
    } finally {
      await s.stop();
    }
    const v2 = await startExe({ LLMATIC_CPU_LEVEL: "x86-64-v2" });
    try {
      expect(v2.output()).toContain("ggml's CPU kernels built for x86-64-v2");
      expect(await chatTokens(v2, "hi", 3)).toBe(3);
    } finally {
      await v2.stop();
    }
    if (level < 4) {
      const p = Bun.spawnSync([exe, "--help"], {
        cwd: dir,
        env: clean({ LLMATIC_CPU_LEVEL: "x86-64-v4" }),
        stderr: "pipe",
      });
      expect(p.exitCode).toBe(1);
      expect(p.stderr.toString()).toContain("LLMATIC_CPU_LEVEL=x86-64-v4 needs AVX512");
    }
  }, 120_000);

  // qemu-user runs the executable on an emulated CPU whose CPUID lacks AVX512 (Haswell)
  // or AVX2 and AVX (Nehalem); the engine runs in the same process (--isolation thread),
  // so all of it runs under the emulator. qemu 7.2's TCG executes AVX2 instructions
  // even for a CPU model without them, so the test that the v2 build holds none is
  // the disassembly check below, not a SIGILL.
  for (const [cpu, level] of [
    ["Nehalem", "x86-64-v2"],
    ["Haswell", "x86-64-v3"],
  ] as const) {
    test(`under qemu-x86_64 -cpu ${cpu} (no ${cpu === "Nehalem" ? "AVX/AVX2" : "AVX512"}) it picks ${level} and answers a chat`, async () => {
      const qemu = Bun.which("qemu-x86_64");
      expect(qemu).toBeTruthy(); // .ci/run installs qemu-user
      const s = await startExe(
        {},
        {
          args: ["--isolation", "thread", "--parallel", "1"],
          cmd: [qemu as string, "-cpu", cpu, exe],
          timeoutMs: 100_000,
        },
      );
      try {
        expect(s.output()).toContain(`ggml's CPU kernels built for ${level}`);
        expect(await chatTokens(s, `Hello from an emulated ${cpu}`, 4)).toBe(4);
      } finally {
        await s.stop();
      }
    }, 150_000);
  }

  test("the x86-64-v2 build holds no AVX instruction outside llmatic's CPU-checked kernels; v3's ggml kernels use AVX2 registers, v4's AVX512", () => {
    /** the disassembly of one function of a library */
    const fn = (level: string, name: string): string => {
      const lib = join(ROOT, "native", "lib", "cpu", `libllmatic-${level}.so`);
      const p = Bun.spawnSync(["objdump", `--disassemble=${name}`, "--no-show-raw-insn", lib], { stdout: "pipe" });
      expect(p.exitCode).toBe(0);
      const text = p.stdout.toString();
      const at = text.indexOf(`<${name}>:`);
      expect(at).toBeGreaterThan(-1);
      return text.slice(at);
    };
    for (const name of ["ggml_vec_dot_q4_K_q8_K", "ggml_vec_dot_q8_0_q8_0", "ggml_vec_dot_f16"]) {
      expect(fn("x86-64-v2", name)).not.toMatch(/%[yz]mm/);
      expect(fn("x86-64-v3", name)).toMatch(/%ymm/);
      expect(fn("x86-64-v3", name)).not.toMatch(/%zmm/);
    }
    expect(fn("x86-64-v4", "ggml_vec_dot_f16")).toMatch(/%zmm/);
    // and in the whole v2 library, AVX registers appear only in llmatic's own
    // kernels, which carry target attributes and run after a CPU check
    const all = Bun.spawnSync(
      ["objdump", "-d", "--no-show-raw-insn", join(ROOT, "native", "lib", "cpu", "libllmatic-x86-64-v2.so")],
      { stdout: "pipe" },
    );
    expect(all.exitCode).toBe(0);
    const avx = new Set<string>();
    let current = "";
    for (const line of all.stdout.toString().split("\n")) {
      const head = /^[0-9a-f]+ <(.+)>:$/.exec(line);
      if (head) current = head[1] as string;
      else if (/%[yz]mm/.test(line)) avx.add(current);
    }
    const kernels =
      /q4k_row|q6k_row|amx_rows|amx_chunk|amx_run|AmxQ[46]K|4tileI|4rowsI|3runI|qgemm_avx512|pack_b|unpack|attn_rows/;
    expect([...avx].filter((f) => !kernels.test(f))).toEqual([]);
    expect(avx.size).toBeGreaterThan(0);
  }, 60_000);

  test("with no model it makes the demo model from its embedded tokenizer, and says so", async () => {
    const s = await startServerProcess([], { cmd: [exe], cwd: dir, env: clean(), cleanEnv: true });
    try {
      expect(s.output()).toContain("RANDOM WEIGHTS");
      const models = (await (await fetch(`${s.url}/v1/models`)).json()) as { data: { id: string }[] };
      expect(models.data.map((m) => m.id)).toEqual(["llmatic-tiny"]);
    } finally {
      await s.stop();
    }
  }, 120_000);
});
