// bun test preload: a fresh clone gets the native library and the test model
// before any test runs (both are cached; nothing is ever skipped for lack of them).
// What tests store (files, batches) goes to a fresh data directory, never the user's.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildNative } from "../native/build";
import { ensureTinyModel } from "../src/models/synthetic";

process.env.XDG_DATA_HOME = mkdtempSync(join(tmpdir(), "llmatic-test-data-"));
await buildNative({ quiet: !process.env.LLMATIC_VERBOSE });
await ensureTinyModel((s) => process.stderr.write(`[test setup] ${s}\n`));
