// A reranker GGUF (rank pooling, a yes/no classification head and a "rerank"
// prompt, as llama.cpp converts Qwen3-Reranker) ranks with its head: the same
// scores, pair for pair, as llama.cpp's own llama-server --rerank on the same file.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { ensureRerankerModel } from "../src/models/synthetic";
import { type ServerProcess, startLlamaServer, startServerProcess } from "./server-process";

setDefaultTimeout(60_000);

let ours: ServerProcess;
let theirs: ReturnType<typeof Bun.spawn>;
let theirsUrl = "";

const post = async (url: string, path: string, body: unknown) => {
  const r = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: (await r.json()) as any };
};

beforeAll(async () => {
  const path = await ensureRerankerModel();
  ours = await startServerProcess(["-m", path, "--parallel", "1", "-c", "2048"]);
  ({ url: theirsUrl, proc: theirs } = await startLlamaServer(
    ["-m", path, "--rerank", "-c", "2048", "-t", "2"],
    30_000,
  ));
});

afterAll(async () => {
  theirs?.kill();
  await ours?.stop();
});

describe("a reranker GGUF", () => {
  const query = "What is the capital of France?";
  const documents = [
    "The cat sat on the mat.",
    "Paris is the capital of France.",
    "Bananas are yellow.",
    "France's capital city is Paris, on the Seine.",
    "Grüße aus 東京 🚀",
  ];

  test("scores with its rank head: llama-server's scores and order, pair for pair", async () => {
    const a = await post(ours.url, "/v1/rerank", { query, documents });
    const b = await post(theirsUrl, "/v1/rerank", { query, documents });
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(a.body.scorer).toBe("rank-head");
    expect(a.body.results.map((r: any) => r.index)).toEqual(b.body.results.map((r: any) => r.index));
    for (const [i, r] of a.body.results.entries()) {
      const s = b.body.results[i].relevance_score as number;
      expect(Math.abs(r.relevance_score - s)).toBeLessThan(1e-5);
      expect(r.relevance_score).toBeGreaterThan(0);
      expect(r.relevance_score).toBeLessThan(1);
      expect(r.document.text).toBe(documents[r.index] as string);
    }
    // a head that read the documents: they do not all score the same
    expect(new Set(a.body.results.map((r: any) => r.relevance_score)).size).toBe(documents.length);
    expect(a.body.usage.prompt_tokens).toBe(b.body.usage.prompt_tokens);
    // top_n, one document, and the same request twice
    const top = await post(ours.url, "/rerank", { query, documents, top_n: 2, return_documents: false });
    expect(top.body.results).toEqual(a.body.results.slice(0, 2).map(({ document: _, ...r }: any) => r));
    const one = await post(ours.url, "/v1/rerank", { query, documents: [documents[3]] });
    expect(one.body.results[0].relevance_score).toBeCloseTo(
      a.body.results.find((r: any) => r.index === 3).relevance_score,
      6,
    );
  });

  test("it ranks, it does not embed; /v1/models says so", async () => {
    const e = await post(ours.url, "/v1/embeddings", { model: "llmatic-tiny-rerank", input: "hello" });
    expect(e.status).toBe(400);
    expect(e.body.error.message).toMatch(/reranker/);
    const o = await post(ours.url, "/api/embed", { model: "llmatic-tiny-rerank", input: "hello" });
    expect(o.status).toBe(400);
    expect(typeof o.body.error).toBe("string");
    const models = (await (await fetch(`${ours.url}/v1/models`)).json()) as any;
    expect(models.data[0].capabilities).toContain("rerank");
    expect(models.data[0].capabilities).not.toContain("embedding");
  });

  test("a document that spells a control token stays text", async () => {
    const plain = await post(ours.url, "/v1/rerank", { query, documents: ["Paris<|im_end|>"] });
    expect(plain.status).toBe(200);
    // the pair is longer than with the special token parsed: the text was not read as one token
    const parsed = await post(theirsUrl, "/v1/rerank", { query, documents: ["Paris<|im_end|>"] });
    expect(plain.body.usage.prompt_tokens).toBeGreaterThan(parsed.body.usage.prompt_tokens);
  });
});
