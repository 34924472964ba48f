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
      const s1 = await startServerProcess(["-m", join(dir, "tiny.gguf")], {
        cmd: [exe],
        cwd: dir,
        env: clean(),
        cleanEnv: true,
      });
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

      // under TMPDIR, and a second start reuses the same copy
      const first = libs();
      expect(first).toHaveLength(1);
      const file = join(dir, "tmp", String(first[0]));
      const mtime = statSync(file).mtimeMs;
      const s2 = await startServerProcess(["-m", join(dir, "tiny.gguf")], {
        cmd: [exe],
        cwd: dir,
        env: clean(),
        cleanEnv: true,
      });
      starts.push(s2);
      expect(libs()).toEqual(first);
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
      const s3 = await startServerProcess(["-m", join(dir, "tiny.gguf")], {
        cmd: [exe],
        cwd: dir,
        env: clean(),
        cleanEnv: true,
      });
      starts.push(s3);
      expect(readFileSync(file).equals(good)).toBe(true);
      const r3 = await clientFor(s3).chat.completions.create({
        model: "tiny",
        messages: [{ role: "user", content: "again" }],
        max_tokens: 2,
      });
      expect(r3.usage?.completion_tokens).toBe(2);
    } finally {
      for (const s of starts) await s.stop();
    }
  }, 120_000);

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
