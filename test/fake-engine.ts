// A scripted Engine for route tests: no native code, exact control over events.
import type { Engine } from "../src/engine/engine";
import type {
  EmbedResult,
  EngineStats,
  GenerateEvent,
  GenerateRequest,
  ModelInfo,
  RankResult,
  RenderedPrompt,
  TranscribeEvent,
} from "../src/engine/types";
import { DomainError } from "../src/errors";

export interface Script {
  /** refuse at admission with this error */
  refuse?: Extract<GenerateEvent, { type: "error" }>;
  /** text pieces per choice (default: ["Hello", " world"]) */
  pieces?: string[];
  /** finish reason (default "stop") */
  reason?: "stop" | "length";
  /** fail after this many pieces with this error */
  failAfter?: { pieces: number; error: Extract<GenerateEvent, { type: "error" }> };
  promptTokens?: number;
  cachedTokens?: number;
  /** wait between pieces (ms) */
  delay?: number;
  /** replaces everything after "start" (choice 0 only) */
  events?: GenerateEvent[];
}

export const FAKE_INFO: ModelInfo = {
  id: "fake-model",
  path: "/models/fake-model.gguf",
  description: "fake",
  nCtx: 4096,
  nCtxSlot: 1024,
  nCtxTrain: 4096,
  nEmbd: 4,
  nVocab: 1000,
  nParams: 1,
  sizeBytes: 1,
  parallel: 4,
  chatTemplate: null,
  eogTokens: [2],
  bosToken: 1,
  fim: false,
  rankHead: false,
  kind: "text",
  createdAt: 1700000000,
};

export class FakeEngine implements Engine {
  readonly requests: GenerateRequest[] = [];
  readonly signals: AbortSignal[] = [];
  script: Script = {};
  closed = false;

  constructor(readonly info: ModelInfo = FAKE_INFO) {}

  async *generate(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateEvent, void, void> {
    this.requests.push(req);
    if (signal) this.signals.push(signal);
    const s = this.script;
    if (s.refuse) {
      yield s.refuse;
      return;
    }
    yield { type: "start", promptTokens: s.promptTokens ?? 7, cachedTokens: s.cachedTokens ?? 0, prompt: null };
    if (s.events) {
      yield* s.events;
      return;
    }
    const pieces = s.pieces ?? ["Hello", " world"];
    for (let c = 0; c < req.n; c++) {
      let text = "";
      for (let i = 0; i < pieces.length; i++) {
        if (signal?.aborted) {
          yield { type: "end", choice: c, reason: "cancelled", completionTokens: i, text };
          return;
        }
        if (s.failAfter && i === s.failAfter.pieces) {
          yield s.failAfter.error;
          return;
        }
        if (s.delay) await Bun.sleep(s.delay);
        text += pieces[i];
        yield { type: "text", choice: c, text: pieces[i] as string, tokens: i + 1 };
      }
      yield { type: "end", choice: c, reason: s.reason ?? "stop", completionTokens: pieces.length, text };
    }
  }

  async tokenize(text: string): Promise<number[]> {
    return [...text].map((ch) => ch.charCodeAt(0) % 1000);
  }

  async countTokens(req: GenerateRequest): Promise<number> {
    return (await this.renderPrompt(req)).tokens;
  }

  async renderPrompt(req: GenerateRequest): Promise<RenderedPrompt> {
    this.requests.push(req);
    const text =
      req.prompt.type === "chat"
        ? req.prompt.chat.messages.map((m) => `${m.role}: ${String(m.content)}`).join("\n")
        : null;
    return { tokens: this.script.promptTokens ?? 7, text };
  }

  async detokenize(tokens: number[]): Promise<string> {
    return tokens.map((t) => `<${t}>`).join("");
  }

  async embed(inputs: (string | number[])[]): Promise<EmbedResult> {
    return {
      vectors: inputs.map((_, i) => Float32Array.from([0.5, -0.5, 0.5, i === 0 ? -0.5 : 0.25])),
      promptTokens: inputs.length * 3,
    };
  }

  async *transcribe(): AsyncGenerator<TranscribeEvent> {
    yield { type: "error", code: "invalid_request", message: "this model is not a speech model", param: "model" };
  }

  async rank(): Promise<RankResult> {
    throw new DomainError("invalid_request", "this model has no rank head", "model");
  }

  stats(): EngineStats {
    return { slotsBusy: 1, slotsTotal: 4, queued: 0 };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
