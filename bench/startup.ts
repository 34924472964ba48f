#!/usr/bin/env bun
// bun run bench:startup [--reps N]: executable size, and process start -> ready
// (the "llmatic ready" line) for dist/llmatic, `bun src/main.ts` and `bun run serve`,
// on the tiny model and on the bench model.
import { statSync } from "node:fs";
import { join } from "node:path";
import { ensureTinyModel } from "../src/models/synthetic";
import { benchModel, opt } from "./common";

const ROOT = join(import.meta.dir, "..");
const reps = opt("--reps", 15);

const built = Bun.spawnSync([process.execPath, join(ROOT, "scripts", "compile.ts")], { stderr: "inherit" });
if (built.exitCode !== 0) process.exit(1);
const exe = join(ROOT, "dist", "llmatic");
const models = { tiny: await ensureTinyModel(), bench: await benchModel() };

async function timeToReady(cmd: string[]): Promise<number> {
  const t0 = performance.now();
  const proc = Bun.spawn([...cmd, "--port", "0"], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, LLMATIC_LOG_LEVEL: "info" },
  });
  let out = "";
  const dec = new TextDecoder();
  for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) {
    out += dec.decode(chunk, { stream: true });
    if (out.includes("llmatic ready on")) break;
  }
  const ms = performance.now() - t0;
  proc.kill("SIGTERM");
  await proc.exited;
  if (!out.includes("llmatic ready on")) throw new Error(`${cmd.join(" ")} did not get ready:\n${out}`);
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const commands = [[exe], [process.execPath, "src/main.ts"], [process.execPath, "run", "serve", "--"]];
console.log(`dist/llmatic: ${(statSync(exe).size / 1e6).toFixed(1)} MB`);
// the three commands take turns within each repetition, so a drift of the
// machine's speed over the run (page cache, other load) falls on all of them
console.log(`start -> ready, median of ${reps}, the commands in turn (ms)`);
console.log("model   dist/llmatic   bun src/main.ts   bun run serve   dist/llmatic / bun src/main.ts");
for (const [name, path] of Object.entries(models)) {
  const times: number[][] = commands.map(() => []);
  await timeToReady([...(commands[0] as string[]), "-m", path]); // warm the page cache
  for (let i = 0; i < reps; i++) {
    for (const [j, cmd] of commands.entries()) times[j]?.push(await timeToReady([...cmd, "-m", path]));
  }
  const row = times.map(median);
  const ratio = (row[0] as number) / (row[1] as number);
  console.log(
    `${name.padEnd(7)} ${row.map((t) => t.toFixed(0).padStart(12)).join("    ")}    ${ratio.toFixed(3).padStart(10)} (target <= 1.02)`,
  );
}
