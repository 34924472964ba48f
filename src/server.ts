// Starts llmatic: resolves the models, listens, loads the models (503 "loading"
// meanwhile), prints the URL, and shuts down cleanly on SIGINT/SIGTERM.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { createApp } from "./app";
import { expandModelPaths, modelIdOf, type ServerConfig } from "./config";
import { embedded } from "./embedded";
import { LlamaEngine } from "./engine/client";
import { log } from "./log";
import { ensureTinyModel } from "./models/synthetic";
import { ModelRegistry } from "./registry";

export interface RunningServer {
  url: string;
  registry: ModelRegistry;
  stop: () => Promise<void>;
}

async function resolveModels(config: ServerConfig): Promise<{ id: string; path: string }[]> {
  let paths: string[];
  if (config.models.length > 0) {
    paths = expandModelPaths(config.models);
    if (paths.length === 0) throw new Error(`no .gguf files in ${config.models.join(", ")}`);
  } else {
    const dir = resolve("models");
    paths = existsSync(dir) ? expandModelPaths([dir]) : [];
    if (paths.length === 0) {
      const demo = await ensureTinyModel((s) => log.info(s));
      log.warn("=".repeat(78));
      log.warn("No model given and no .gguf file in ./models: serving llmatic's tiny DEMO model.");
      log.warn("It has RANDOM WEIGHTS: its answers are gibberish. To use a real model:");
      log.warn(
        `  ${embedded() ? "llmatic" : "bun run serve --"} --model /path/to/model.gguf   (or put .gguf files in ./models)`,
      );
      log.warn("=".repeat(78));
      paths = [demo];
    }
  }
  return paths.map((path) => ({ id: modelIdOf(path), path }));
}

export async function startServer(config: ServerConfig): Promise<RunningServer> {
  const models = await resolveModels(config);
  let chatTemplate: string | undefined;
  if (config.chatTemplateFile) chatTemplate = await Bun.file(config.chatTemplateFile).text();
  const registry = new ModelRegistry(models, (entry, onProgress) =>
    LlamaEngine.start(
      {
        modelPath: entry.path,
        libPath: process.env.LLMATIC_LIB,
        id: entry.id,
        nCtx: config.ctxSize,
        nThreads: config.threads,
        nThreadsBatch: config.threadsBatch,
        parallel: config.parallel,
        queueSize: config.queueSize,
        niceness: 5,
        repack: !config.deterministic,
        nBatch: config.batchSize,
        nGpuLayers: config.nGpuLayers,
        chatTemplate,
      },
      onProgress,
    ),
  );
  const app = createApp(registry, config).listen({
    hostname: config.host,
    port: config.port,
    // a backstop for bodies without a content-length; the http layer answers 413 with a JSON error before
    maxRequestBodySize: config.maxBodyBytes + 1024 * 1024,
  });
  const server = app.server;
  if (!server) throw new Error("the HTTP server did not start");
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${server.port}`;
  log.info(`llmatic listening on ${url} (models load now; /health says when they are ready)`);

  let lastPct = new Map<string, number>();
  await registry.loadAll((e) => {
    if (e.state === "loading") {
      const pct = Math.floor(e.progress * 4) * 25;
      if (lastPct.get(e.id) !== pct) {
        lastPct.set(e.id, pct);
        log.info(`loading ${e.id}: ${pct}%`);
      }
    } else if (e.state === "ready") {
      const i = e.engine?.info;
      log.info(
        `ready: ${e.id} (${i?.description}, context ${i?.nCtx} = ${i?.parallel} slots x ${i?.nCtxSlot}, ${config.threads} threads)`,
      );
    } else if (e.state === "failed") log.error(`failed to load ${e.id}: ${e.error}`);
  });
  lastPct = new Map();
  const ready = registry.list().filter((e) => e.state === "ready");
  if (ready.length === 0) log.error("no model could be loaded: every request will fail (see the errors above)");
  log.info(`llmatic ready on ${url}/v1 (docs: ${url}/docs)`);

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      // stop accepting, let in-flight requests finish, then free native memory
      await server.stop(false);
      await registry.closeAll();
    })();
    return stopping;
  };
  return { url, registry, stop };
}

/** SIGINT/SIGTERM: finish what runs, free native memory, exit. A second signal exits at once. */
export function handleSignals(running: RunningServer): void {
  let signalled = false;
  const onSignal = (sig: string) => {
    if (signalled) {
      log.warn(`${sig} again: exiting now`);
      process.exit(130);
    }
    signalled = true;
    log.info(`${sig}: finishing in-flight requests, then shutting down`);
    running.stop().then(
      () => {
        log.info("stopped");
        process.exit(0);
      },
      (e) => {
        log.error(`shutdown failed: ${e}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
}
