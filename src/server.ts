// Starts llmatic: resolves the models (files, directories, hub references),
// listens, loads the models (hub ones are downloaded first; a request for a
// model still loading waits for it), prints the URL, and shuts down cleanly on
// SIGINT/SIGTERM.
import { existsSync } from "node:fs";
import { basename, resolve } from "node:path";
import { createApp } from "./app";
import { ConfigError, expandModelPaths, modelIdOf, type ServerConfig } from "./config";
import { embedded } from "./embedded";
import { LlamaEngine } from "./engine/client";
import { validateModelFile } from "./ffi/model";
import { log } from "./log";
import { Metrics } from "./metrics";
import { type ModelRef, parseModelRef, resolveHubRef, stderrProgress } from "./models/hub";
import { projectorBeside } from "./models/projector";
import { ensureTinyModel } from "./models/synthetic";
import { isWhisperFile } from "./models/whisper-file";
import { ModelRegistry } from "./registry";
import { Stores } from "./services";

export interface RunningServer {
  url: string;
  registry: ModelRegistry;
  /** resolves when the models loaded at start are loaded (or failed) */
  ready: Promise<void>;
  stop: () => Promise<void>;
}

/** The id clients use: a file's name without .gguf; a quantization reference as written (owner/repo:QUANT). */
function idOf(ref: ModelRef): string {
  if (ref.kind === "path") return modelIdOf(ref.path);
  return ref.file ? modelIdOf(basename(ref.file)) : `${ref.repo}:${(ref.quant ?? "").toUpperCase()}`;
}

async function resolveModels(config: ServerConfig): Promise<{ id: string; source: ModelRef }[]> {
  const sources: ModelRef[] = [];
  for (const text of config.models) {
    const ref = parseModelRef(text);
    if (ref.kind === "hf") sources.push(ref);
    else {
      const files = expandModelPaths([resolve(ref.path)]);
      if (files.length === 0) throw new ConfigError(`no .gguf files in ${ref.path}`);
      sources.push(...files.map((path): ModelRef => ({ kind: "path", path })));
    }
  }
  if (config.models.length === 0) {
    const dir = resolve("models");
    const files = existsSync(dir) ? expandModelPaths([dir]) : [];
    sources.push(...files.map((path): ModelRef => ({ kind: "path", path })));
    if (sources.length === 0) {
      const demo = await ensureTinyModel((s) => log.info(s));
      log.warn("=".repeat(78));
      log.warn("No model given and no .gguf file in ./models: serving llmatic's tiny DEMO model.");
      log.warn("It has RANDOM WEIGHTS: its answers are gibberish. To use a real model:");
      log.warn(
        `  ${embedded() ? "llmatic" : "bun run serve --"} --model /path/to/model.gguf   (or put .gguf files in ./models)`,
      );
      log.warn("=".repeat(78));
      sources.push({ kind: "path", path: demo });
    }
  }
  return sources.map((source) => ({ id: idOf(source), source }));
}

/** `llmatic pull REF...`: downloads hub models into the cache without serving. */
export async function pull(refs: string[]): Promise<void> {
  if (refs.length === 0)
    throw new ConfigError("pull needs a model reference, e.g. pull Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M");
  for (const text of refs) {
    const ref = parseModelRef(text.startsWith("hf:") || !existsSync(text) ? text : `hf:${text}`);
    if (ref.kind !== "hf") throw new ConfigError(`${text} is a local path, not a hub reference`);
    const path = await resolveHubRef(ref, stderrProgress("[pull]"));
    process.stdout.write(`${path}\n`);
  }
}

export async function startServer(config: ServerConfig): Promise<RunningServer> {
  const models = await resolveModels(config);
  if (config.mmproj && models.length > 1) {
    throw new ConfigError(
      `--mmproj goes with one model (${models.length} are served): put each model's mmproj-*.gguf beside it instead`,
    );
  }
  if (config.modelDraft) {
    try {
      validateModelFile(config.modelDraft);
    } catch (e) {
      throw new ConfigError(`--model-draft: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  let chatTemplate: string | undefined;
  if (config.chatTemplateFile) chatTemplate = await Bun.file(config.chatTemplateFile).text();
  const lastPct = new Map<string, number>();
  const registry = new ModelRegistry(
    models,
    async (entry, onProgress, onExit) => {
      const path =
        entry.source.kind === "hf"
          ? await resolveHubRef(entry.source, stderrProgress(`[download ${entry.id}]`))
          : entry.source.path;
      return LlamaEngine.start(
        {
          modelPath: path,
          libPath: process.env.LLMATIC_LIB,
          id: entry.id,
          nCtx: config.ctxSize,
          nThreads: config.threads,
          nThreadsBatch: config.threadsBatch,
          parallel: config.parallel,
          queueSize: config.queueSize,
          niceness: 5,
          repack: !config.deterministic,
          sgemmMinBatch: config.sgemmMinBatch,
          // llmatic's kernel rounds differently from ggml's one-token kernels
          qgemmMaxBatch: config.deterministic ? 0 : config.qgemmMaxBatch,
          nBatch: config.batchSize,
          nGpuLayers: config.nGpuLayers,
          chatTemplate,
          draftMax: config.draftMax,
          draftModelPath: isWhisperFile(path) ? undefined : (config.modelDraft ?? undefined),
          cacheRamBytes: config.cacheRamBytes,
          cacheDir: config.cacheDir ?? undefined,
          cacheDirBytes: config.cacheDirBytes,
          mmprojPath: isWhisperFile(path) ? undefined : (config.mmproj ?? projectorBeside(path) ?? undefined),
        },
        {
          onProgress,
          onExit,
          isolation: config.isolation,
          images: { allowUrls: config.allowImageUrls, maxBytes: config.maxImageBytes, timeoutMs: 10_000 },
        },
      );
    },
    {
      maxLoaded: config.maxLoaded,
      idleUnloadMs: config.idleUnload * 1000,
      onEvent: (e, what) => {
        if (what === "loading" || what === "progress") {
          const pct = Math.floor(e.progress * 4) * 25;
          if (lastPct.get(e.id) === pct) return;
          lastPct.set(e.id, pct);
          log.info(`loading ${e.id}: ${pct}%`);
          return;
        }
        lastPct.delete(e.id);
        if (what === "ready") {
          const i = e.engine?.info;
          log.info(
            `ready: ${e.id} (${i?.description}, context ${i?.nCtx} = ${i?.parallel} slots x ${i?.nCtxSlot}, ${config.threads} threads${i?.draftModel ? `, drafts from ${basename(i.draftModel)}` : ""})`,
          );
        } else if (what === "failed") {
          log.error(
            `failed to load ${e.id}: ${e.error} (next attempt in ${Math.round((e.retryAt - Date.now()) / 1000)} s)`,
          );
        } else if (what === "crashed") {
          log.error(
            `the engine of ${e.id} stopped (${e.lastExit}); restarting in ${Math.round((e.retryAt - Date.now()) / 1000)} s`,
          );
        } else if (what === "unloaded") log.info(`unloaded ${e.id}`);
      },
    },
  );
  const metrics = new Metrics();
  const stores = new Stores(config, registry, metrics);
  const app = createApp(registry, config, metrics, stores).listen({
    hostname: config.host,
    port: config.port,
    // a backstop: the http layer and the upload routes answer 413 with a JSON error before
    maxRequestBodySize: Math.max(config.maxBodyBytes, config.maxUploadBytes) + 1024 * 1024,
  });
  const server = app.server;
  if (!server) throw new Error("the HTTP server did not start");
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${server.port}`;
  log.info(`llmatic listening on ${url} (models load now; /health says when they are ready)`);
  // the compiled executable's choice of CPU code (src/bin.ts)
  if (process.env.LLMATIC_CPU_CODE)
    log.info(`native code: ggml's CPU kernels built for ${process.env.LLMATIC_CPU_CODE}`);
  if (config.apiKeys.length === 0 && !isLoopbackAddress(config.host)) {
    log.warn("!".repeat(78));
    log.warn(`llmatic listens on ${config.host}, reachable from other machines, and NO API KEY is set:`);
    log.warn("anyone who can reach this port can use the models. Set --api-key KEY (or --api-key-file FILE).");
    log.warn("!".repeat(78));
  }

  // batches a restart interrupted go on where they stopped; fine-tuned models are served again
  stores.batches.start();
  stores.fineTunes.start();
  registry.startIdleSweep();
  const ready = registry.preload().then(() => {
    const failed = registry.list().filter((e) => e.state === "failed");
    if (failed.length === registry.list().length) {
      log.error("no model could be loaded: every request will fail (see the errors above)");
    }
    log.info(`llmatic ready on ${url}/v1 (docs: ${url}/docs)`);
  });

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      // stop accepting, let in-flight requests finish, then free native memory
      await server.stop(false);
      await stores.close();
      await ready;
      await registry.closeAll();
    })();
    return stopping;
  };
  return { url, registry, ready, stop };
}

function isLoopbackAddress(host: string): boolean {
  const h = host.toLowerCase();
  return h === "localhost" || h === "::1" || h === "[::1]" || /^127\./.test(h);
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
