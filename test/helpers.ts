import { existsSync, readFileSync } from "node:fs";
import { LlamaEngine } from "../src/engine/client";
import type { Engine } from "../src/engine/engine";
import type { EngineConfig, GenerateEvent, GenerateRequest } from "../src/engine/types";
import { DEFAULT_SAMPLING, type SamplingParams } from "../src/ffi/sampler";
import { TINY_MODEL_PATH } from "../src/models/synthetic";

export { TINY_MODEL_PATH };

/** this CPU's flags as Linux lists them (empty elsewhere): a CPU with a kernel's flags must run it */
export const cpuFlags = new Set(
  (/^flags\s*:(.*)$/m.exec(existsSync("/proc/cpuinfo") ? readFileSync("/proc/cpuinfo", "utf8") : "")?.[1] ?? "")
    .trim()
    .split(/\s+/),
);

export function tinyConfig(over: Partial<EngineConfig> = {}): EngineConfig {
  return { modelPath: TINY_MODEL_PATH, id: "tiny", nCtx: 4096, nThreads: 2, parallel: 2, ...over };
}

export function startTiny(over: Partial<EngineConfig> = {}): Promise<LlamaEngine> {
  return LlamaEngine.start(tinyConfig(over));
}

export function textRequest(
  text: string,
  over: Partial<Omit<GenerateRequest, "sampling">> & { sampling?: Partial<SamplingParams> } = {},
): GenerateRequest {
  const { sampling, ...rest } = over;
  return {
    prompt: { type: "text", text },
    n: 1,
    maxTokens: 32,
    stop: [],
    ...rest,
    sampling: { ...DEFAULT_SAMPLING, seed: 1, ...sampling },
  };
}

export interface Collected {
  events: GenerateEvent[];
  texts: string[][];
  ends: Extract<GenerateEvent, { type: "end" }>[];
  error: Extract<GenerateEvent, { type: "error" }> | null;
}

export async function collect(engine: Engine, req: GenerateRequest, signal?: AbortSignal): Promise<Collected> {
  const out: Collected = { events: [], texts: Array.from({ length: req.n }, () => []), ends: [], error: null };
  for await (const e of engine.generate(req, signal)) {
    out.events.push(e);
    if (e.type === "text") (out.texts[e.choice] as string[]).push(e.text);
    if (e.type === "end") out.ends[e.choice] = e;
    if (e.type === "error") out.error = e;
  }
  return out;
}

/** The error a promise rejects with (bun's `expect(p).rejects` hangs on worker-settled promises). */
export async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected the promise to reject");
}
