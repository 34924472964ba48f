#!/usr/bin/env bun
// llmatic's command line: `bun run serve -- [options]` (see --help).
import { ConfigError, HELP, loadConfig } from "./config";
import { log } from "./log";
import { handleSignals, startServer } from "./server";

try {
  const { help, config } = loadConfig(process.argv.slice(2));
  if (help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  handleSignals(await startServer(config));
} catch (e) {
  if (e instanceof ConfigError) {
    process.stderr.write(`llmatic: ${e.message}\n`);
    process.exit(2);
  }
  log.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
}
