#!/usr/bin/env bun
// llmatic's command line: `bun run serve -- [options]` (see --help).
import { ConfigError, HELP, loadConfig } from "./config";
import { log } from "./log";
import { HubError } from "./models/hub";
import { handleSignals, pull, startServer } from "./server";

try {
  const argv = process.argv.slice(2);
  if (argv[0] === "pull") {
    await pull(argv.slice(1).filter((a) => a !== "--"));
    process.exit(0);
  }
  const { help, config } = loadConfig(argv);
  if (help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  // signals are handled from the moment the server listens, also while models load
  const running = await startServer(config);
  handleSignals(running);
  await running.ready;
} catch (e) {
  if (e instanceof ConfigError || e instanceof HubError) {
    process.stderr.write(`llmatic: ${e.message}\n`);
    process.exit(2);
  }
  log.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
}
