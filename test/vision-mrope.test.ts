// An M-RoPE vision model (a tiny Qwen2-VL-shaped text model and a qwen2vl_merger
// projector, random weights): an image takes fewer positions than tokens, so
// every position after it is shifted. llmatic's next-token distribution after
// images, and after a cached image, against llama.cpp's own llama-server
// --mmproj on the same files.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { ensureQwenVisionModel } from "../src/models/synthetic";
import { qwen2vlImageTokens } from "../src/vision/mmproj-synth";
import { png } from "./png";
import { type ServerProcess, startLlamaServer, startServerProcess } from "./server-process";

setDefaultTimeout(120_000);

let ours: ServerProcess;
let theirs: ReturnType<typeof Bun.spawn>;
let theirsUrl: string;
const wide = png(40, 30, (x, y) => [x * 6, y * 8, (x ^ y) * 4]);
const square = png(64, 64, (x, y) => [255 - x * 3, y * 4, 90]);
const uri = (b: Buffer) => `data:image/png;base64,${b.toString("base64")}`;

beforeAll(async () => {
  const { model, projector } = await ensureQwenVisionModel();
  // ggml's own kernels and attention (--qgemm-max-batch 0), as llama-server's: llmatic's
  // decode attention sums in f32 where ggml's sums V in f16, which moves these logprobs
  // by up to 1e-3, as much as the position errors this file looks for
  // (test/attention.test.ts checks that kernel against an exact reference)
  ours = await startServerProcess([
    "-m",
    model,
    "--parallel",
    "2",
    "-c",
    "4096",
    "--threads",
    "2",
    "--qgemm-max-batch",
    "0",
  ]);
  ({ url: theirsUrl, proc: theirs } = await startLlamaServer([
    "-m",
    model,
    "--mmproj",
    projector,
    "-c",
    "4096",
    "-np",
    "2",
    "-t",
    "2",
    "--no-webui",
  ]));
});

afterAll(async () => {
  theirs?.kill();
  await ours?.stop();
});

type Content = ({ type: "text"; text: string } | { type: "image_url"; image_url: { url: string } })[];

/** The first answer token's 5 most likely tokens and their logprobs, and the prompt tokens. */
async function firstToken(base: string, content: Content, history: object[] = []) {
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "llmatic-tiny-qwen2vl",
      max_tokens: 1,
      temperature: 0,
      logprobs: true,
      top_logprobs: 5,
      messages: [...history, { role: "user", content }],
    }),
  });
  const j = (await r.json()) as {
    usage: { prompt_tokens: number; prompt_tokens_details?: { cached_tokens?: number } };
    choices: { logprobs: { content: { top_logprobs: { token: string; logprob: number }[] }[] } }[];
  };
  expect(r.status).toBe(200);
  const top = j.choices[0]?.logprobs.content[0]?.top_logprobs ?? [];
  return { top, prompt: j.usage.prompt_tokens, cached: j.usage.prompt_tokens_details?.cached_tokens ?? 0 };
}

/**
 * The same top tokens with the same logprobs to 4 decimals: random weights attend
 * almost uniformly, so a position off by an image's lag moves a logprob by ~1e-3
 * only (that is what this tolerance catches); the two servers agree to ~1e-6.
 */
function same(a: Awaited<ReturnType<typeof firstToken>>, b: Awaited<ReturnType<typeof firstToken>>): void {
  expect(a.top.map((t) => t.token)).toEqual(b.top.map((t) => t.token));
  for (const [i, t] of a.top.entries()) expect(t.logprob).toBeCloseTo(b.top[i]?.logprob as number, 4);
}

describe("an M-RoPE vision model", () => {
  test("an image takes its grid's tokens and fewer positions; the text after it reads as llama-server reads it", async () => {
    const g = qwen2vlImageTokens(40, 30);
    expect(g.nPos).toBeLessThan(g.nTokens);
    const content: Content = [
      { type: "image_url", image_url: { url: uri(wide) } },
      { type: "text", text: "What is in the picture?" },
    ];
    const a = await firstToken(ours.url, content);
    const b = await firstToken(theirsUrl, content);
    expect(a.prompt).toBe(b.prompt);
    same(a, b);
    // two images with text between: the second image and the text after it start at shifted positions
    const two: Content = [
      { type: "text", text: "First:" },
      { type: "image_url", image_url: { url: uri(square) } },
      { type: "text", text: "Second:" },
      { type: "image_url", image_url: { url: uri(wide) } },
      { type: "text", text: "Which is wider?" },
    ];
    const c = await firstToken(ours.url, two);
    const d = await firstToken(theirsUrl, two);
    expect(c.prompt).toBe(d.prompt);
    same(c, d);
  });

  test("a second turn continues from the cached images at the right positions", async () => {
    const turn1: Content = [
      { type: "image_url", image_url: { url: uri(square) } },
      { type: "text", text: "Describe it." },
    ];
    const history = [
      { role: "user", content: turn1 },
      { role: "assistant", content: "It is a square." },
    ];
    const next: Content = [{ type: "text", text: "And its colours?" }];
    await firstToken(ours.url, turn1);
    const cachedRun = await firstToken(ours.url, next, history);
    expect(cachedRun.cached).toBeGreaterThan(qwen2vlImageTokens(64, 64).nTokens);
    same(cachedRun, await firstToken(theirsUrl, next, history));
  });
});
