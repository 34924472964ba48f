// bun test preload: a fresh clone gets the native library and the test model
// before any test runs (both are cached; nothing is ever skipped for lack of them).
import { buildNative } from "../native/build";
import { ensureTinyModel } from "../src/models/synthetic";

await buildNative({ quiet: !process.env.LLMATIC_VERBOSE });
await ensureTinyModel((s) => process.stderr.write(`[test setup] ${s}\n`));
