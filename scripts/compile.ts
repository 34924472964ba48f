#!/usr/bin/env bun
// bun run compile: dist/llmatic, one executable with the server (which is also
// the engine process), the engine's threads (more entry points) and the native
// library embedded.
import { statSync } from "node:fs";
import { join } from "node:path";
import { buildNative } from "../native/build";

const root = join(import.meta.dir, "..");
await buildNative();
const outfile = join(root, "dist", "llmatic");
const started = performance.now();
const result = await Bun.build({
  entrypoints: [
    join(root, "src", "bin.ts"),
    join(root, "src", "worker.ts"),
    join(root, "src", "prep.ts"),
    join(root, "src", "train-worker.ts"),
  ],
  compile: { outfile },
  minify: true,
});
if (!result.success) {
  for (const m of result.logs) console.error(m);
  process.exit(1);
}
const mb = (statSync(outfile).size / 1e6).toFixed(1);
console.error(`[compile] ${outfile} (${mb} MB) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
