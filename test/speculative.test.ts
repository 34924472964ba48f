// Speculative decoding with n-gram drafts: the same text as plain decoding,
// greedy and sampled (same seed: every token is sampled from the same
// distribution with the same draw), drafts really kept on repeating text, and
// the per-request off-switch. With a draft model (--model-draft): the same
// text again, drafts from the model (the same weights: nearly all kept), and
// a model of another vocabulary refused for n-gram drafts.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { llamaSourceDir } from "../native/build";
import type { LlamaEngine } from "../src/engine/client";
import { vocabMismatch } from "../src/engine/draft-model";
import { Model } from "../src/ffi/model";
import { ensureReasoningModel, ensureTinyKQuantModel } from "../src/models/synthetic";
import { collect, startTiny, TINY_MODEL_PATH, textRequest } from "./helpers";

setDefaultTimeout(120_000);

let spec: LlamaEngine;
let plain: LlamaEngine;
// batch-invariant numerics: a token's logits are the same decoded alone or beside a draft
const config = { parallel: 1, nCtx: 2048, repack: false, qgemmMaxBatch: 0 };

beforeAll(async () => {
  [spec, plain] = await Promise.all([startTiny({ ...config, draftMax: 8 }), startTiny({ ...config, draftMax: 0 })]);
});

afterAll(async () => {
  await Promise.all([spec?.close(), plain?.close()]);
});

const text = async (e: LlamaEngine, req: ReturnType<typeof textRequest>) => (await collect(e, req)).texts[0]?.join("");
/** greedy decoding of `maxTokens` tokens, end-of-generation ignored */
const greedy = (prompt: string, maxTokens: number) =>
  textRequest(prompt, { maxTokens, ignoreEos: true, sampling: { temperature: 0 } });

test("greedy: the text plain decoding gives, with drafts kept on the way", async () => {
  // random weights decoded greedily settle into repeating text: drafts are kept there
  const req = greedy("The numbers go one two three one two three one two", 160);
  const before = spec.stats();
  const a = await text(spec, req);
  const b = await text(plain, req);
  expect(a).toBe(b);
  const after = spec.stats();
  const proposed = (after.draftProposed ?? 0) - (before.draftProposed ?? 0);
  const kept = (after.draftAccepted ?? 0) - (before.draftAccepted ?? 0);
  expect(proposed).toBeGreaterThan(0);
  expect(kept).toBeGreaterThan(20);
  expect(plain.stats().draftProposed ?? 0).toBe(0);
});

test("sampled: the same seed gives the same text (each token drawn from the same distribution)", async () => {
  for (const seed of [1, 2, 3]) {
    const req = textRequest("Once upon a time", {
      maxTokens: 96,
      ignoreEos: true,
      sampling: { temperature: 0.7, topK: 20, seed },
    });
    expect(await text(spec, req)).toBe(await text(plain, req));
  }
});

test("speculative: false decodes one token per step", async () => {
  const before = spec.stats().draftProposed ?? 0;
  const req = textRequest("one two three one two three one two three", {
    maxTokens: 64,
    ignoreEos: true,
    speculative: false,
    sampling: { temperature: 0 },
  });
  const a = await text(spec, req);
  expect(spec.stats().draftProposed ?? 0).toBe(before);
  expect(a).toBe(await text(plain, req));
});

describe("--model-draft", () => {
  /** an engine drafting from `draftModelPath`, for the length of `run` */
  const withDrafts = async (draftModelPath: string, run: (d: LlamaEngine) => Promise<void>) => {
    const d = await startTiny({ ...config, draftMax: 8, draftModelPath });
    try {
      await run(d);
    } finally {
      await d.close();
    }
  };
  const drafted = (e: LlamaEngine) => ({ proposed: e.stats().draftProposed ?? 0, kept: e.stats().draftAccepted ?? 0 });

  test("drafts from the same weights: plain decoding's text, nearly every draft token kept from the start", async () => {
    await withDrafts(TINY_MODEL_PATH, async (d) => {
      expect(d.info.draftModel).toBe(TINY_MODEL_PATH);
      // short and not repeating yet: n-gram lookups would find little here
      const req = greedy("Once upon a time", 48);
      expect(await text(d, req)).toBe(await text(plain, req));
      const { proposed, kept } = drafted(d);
      expect(proposed).toBeGreaterThan(20);
      expect(kept / proposed).toBeGreaterThan(0.9);
    });
  });

  test("drafts from other weights of the same vocabulary: plain decoding's text, greedy and sampled", async () => {
    const other = await ensureTinyKQuantModel();
    await withDrafts(other, async (d) => {
      expect(d.info.draftModel).toBe(other);
      const req = greedy("The numbers go one two three", 96);
      expect(await text(d, req)).toBe(await text(plain, req));
      expect(drafted(d).proposed).toBeGreaterThan(0);
      for (const seed of [1, 2]) {
        const sampled = textRequest("Once upon a time", {
          maxTokens: 64,
          ignoreEos: true,
          sampling: { temperature: 0.7, topK: 20, seed },
        });
        expect(await text(d, sampled)).toBe(await text(plain, sampled));
      }
    });
  });

  test("a model of another vocabulary is refused: n-gram drafts instead", async () => {
    const src = await llamaSourceDir();
    const tiny = Model.load(TINY_MODEL_PATH, { vocabOnly: true });
    const llama3 = Model.load(join(src, "models", "ggml-vocab-llama-bpe.gguf"), { vocabOnly: true });
    try {
      expect(vocabMismatch(tiny, tiny)).toBeNull();
      expect(vocabMismatch(tiny, llama3)).toMatch(/vocabulary sizes differ/);
    } finally {
      tiny.dispose();
      llama3.dispose();
    }
    await withDrafts(await ensureReasoningModel("r1"), async (d) => {
      expect(d.info.draftModel).toBeUndefined();
      const req = greedy("one two three one two three one two three", 64);
      expect(await text(d, req)).toBe(await text(plain, req));
      expect(drafted(d).proposed).toBeGreaterThan(0);
    });
  });
});
