#!/usr/bin/env bun
// bun run compile: dist/llmatic, one executable with the server (which is also
// the engine process), the engine's threads (more entry points) and the native
// library embedded: one build of it per x86-64 level (v2, v3, v4), of which the
// executable loads the best this CPU runs (src/bin.ts, src/cpu-level.ts). The
// Bun runtime inside is Bun's baseline build (x86-64-v2, pinned in
// package.json), so no part of the executable needs more than the CPU has.
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { buildNative, CPU_LEVELS } from "../native/build";
import { embeddedFileHash } from "../src/embedded";

const root = join(import.meta.dir, "..");
if (process.platform !== "linux" || process.arch !== "x64") {
  console.error("[compile] bun run compile builds the portable Linux x86-64 executable; this is not Linux x86-64");
  process.exit(1);
}
const runtime = join(root, "node_modules", "@oven", "bun-linux-x64-baseline", "bin", "bun");
if (!existsSync(runtime)) {
  console.error(`[compile] ${runtime} is missing: run bun install (it is an optional dependency)`);
  process.exit(1);
}
await buildNative({ cpuLevels: true });
// the embedded libraries' content hashes, which src/bin.ts names their extracted copies by
const cpuDir = join(root, "native", "lib", "cpu");
const hashes: Record<string, string> = { probe: embeddedFileHash(join(cpuDir, "libllmatic-cpu.so")) };
for (const level of CPU_LEVELS) hashes[level] = embeddedFileHash(join(cpuDir, `libllmatic-${level}.so`));
const outfile = join(root, "dist", "llmatic");
const started = performance.now();
const result = await Bun.build({
  entrypoints: [
    join(root, "src", "bin.ts"),
    join(root, "src", "worker.ts"),
    join(root, "src", "prep.ts"),
    join(root, "src", "train-worker.ts"),
  ],
  compile: { outfile, target: "bun-linux-x64-baseline", executablePath: runtime },
  minify: true,
  define: { LLMATIC_EMBEDDED_HASHES: JSON.stringify(hashes) },
});
if (!result.success) {
  for (const m of result.logs) console.error(m);
  process.exit(1);
}
const mb = (statSync(outfile).size / 1e6).toFixed(1);
console.error(`[compile] ${outfile} (${mb} MB) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
