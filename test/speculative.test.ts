// Speculative decoding with n-gram drafts: the same text as plain decoding,
// greedy and sampled (same seed: every token is sampled from the same
// distribution with the same draw), drafts really kept on repeating text, and
// the per-request off-switch.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import type { LlamaEngine } from "../src/engine/client";
import { collect, startTiny, textRequest } from "./helpers";

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

test("greedy: the text plain decoding gives, with drafts kept on the way", async () => {
  // random weights decoded greedily settle into repeating text: drafts are kept there
  const req = textRequest("The numbers go one two three one two three one two", {
    maxTokens: 160,
    ignoreEos: true,
    sampling: { temperature: 0 },
  });
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
