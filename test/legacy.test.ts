// The rest of the 1.2.0 contract against a real server on the tiny model:
// files, edits, search, answers, classifications, moderations and batches,
// with the official client, responses checked against the spec's schemas.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { Model } from "../src/ffi/model";
import { TINY_MODEL_PATH } from "../src/models/synthetic";
import { clientFor, type ServerProcess, startServerProcess } from "./server-process";
import { specErrors } from "./spec";

const MODEL = "llmatic-tiny";
let dataDir: string;
let server: ServerProcess;
let client: OpenAI;
let vocab: Model;

const args = () => ["-m", TINY_MODEL_PATH, "-np", "4", "-c", "8192", "--data-dir", dataDir];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "llmatic-legacy-"));
  server = await startServerProcess(args());
  client = clientFor(server);
  vocab = Model.load(TINY_MODEL_PATH, { vocabOnly: true });
});

afterAll(async () => {
  await server?.stop();
  vocab?.dispose();
  rmSync(dataDir, { recursive: true, force: true });
});

const jsonl = (rows: unknown[]) => `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`;
const upload = async (text: string, purpose: string, name = "data.jsonl") =>
  client.files.create({ file: await toFile(Buffer.from(text), name), purpose: purpose as "fine-tune" });
const post = (path: string, body: unknown) =>
  fetch(`${server.url}/v1${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

async function errorOf(p: Promise<unknown>) {
  const e = (await p.catch((x) => x)) as InstanceType<typeof OpenAI.APIError>;
  expect(e).toBeInstanceOf(OpenAI.APIError);
  return e;
}

describe("files", () => {
  test("upload, list, retrieve, download, delete; each object as the spec gives it", async () => {
    const text = jsonl([
      { prompt: "a", completion: " b" },
      { prompt: "c", completion: " d" },
    ]);
    const f = await upload(text, "fine-tune", "train.jsonl");
    expect(f).toMatchObject({
      object: "file",
      bytes: text.length,
      filename: "train.jsonl",
      purpose: "fine-tune",
      status: "processed",
    });
    expect(f.id).toMatch(/^file-[0-9A-Za-z]{24}$/);
    expect(specErrors("OpenAIFile", f)).toEqual([]);
    const list = (await (await fetch(`${server.url}/v1/files`)).json()) as { data: { id: string }[] };
    expect(specErrors("ListFilesResponse", list)).toEqual([]);
    expect(list.data.map((x) => x.id)).toContain(f.id);
    expect((await client.files.list()).data.map((x) => x.id)).toContain(f.id);
    expect(await client.files.retrieve(f.id)).toMatchObject({ id: f.id, bytes: text.length });
    expect(await (await client.files.content(f.id)).text()).toBe(text);
    const del = await client.files.delete(f.id);
    expect(specErrors("DeleteFileResponse", del)).toEqual([]);
    expect(del).toMatchObject({ id: f.id, deleted: true });
    expect((await errorOf(client.files.retrieve(f.id))).status).toBe(404);
  });

  test("each purpose's lines are checked at upload, with a 400 naming the line", async () => {
    const bad: [string, string, RegExp][] = [
      [jsonl([{ prompt: "a", completion: "b" }, { prompt: "only" }]), "fine-tune", /Line 2.*'prompt' and 'completion'/],
      [jsonl([{ text: "x" }, { txt: "y" }]), "search", /Line 2.*'text'/],
      [jsonl([{ text: "x", label: "A" }, { text: "y" }]), "classifications", /Line 2.*'label'/],
      ['{"text":"x"}\n{not json\n', "answers", /Line 2.*not valid JSON/],
      [jsonl([{ custom_id: "a", method: "POST", url: "/v1/edits", body: {} }]), "batch", /Line 1.*'url'/],
      [
        jsonl([
          { custom_id: "a", method: "POST", url: "/v1/completions", body: {} },
          { custom_id: "a", method: "POST", url: "/v1/completions", body: {} },
        ]),
        "batch",
        /Line 2.*twice/,
      ],
      [jsonl([{ prompt: "a", completion: "b" }]), "fine-tune-results", /not a purpose/],
      [jsonl([{ prompt: "a", completion: "b" }]), "nonsense", /not a purpose/],
      ["", "search", /empty/],
    ];
    for (const [text, purpose, re] of bad) {
      const e = await errorOf(upload(text, purpose));
      expect({ purpose, status: e.status }).toEqual({ purpose, status: 400 });
      expect(e.message).toMatch(re);
    }
    // nothing half-uploaded is left behind
    expect(readdirSync(join(dataDir, "files", ".incoming"))).toEqual([]);
  });

  test("file names are metadata only", async () => {
    const f = await upload(jsonl([{ text: "x" }]), "search", "../../etc/passwd");
    expect(f.filename).toBe("passwd");
    expect(existsSync(join(dataDir, "files", f.id))).toBe(true);
    await client.files.delete(f.id);
  });
});

describe("files survive restarts, and an upload killed halfway never appears", () => {
  test("restart, then kill -9 during an upload", async () => {
    const kept = await upload(jsonl([{ text: "kept across restarts" }]), "search", "kept.jsonl");
    await server.stop();
    server = await startServerProcess(args());
    client = clientFor(server);
    expect((await client.files.retrieve(kept.id)).filename).toBe("kept.jsonl");
    expect(await (await client.files.content(kept.id)).text()).toBe(
      `${JSON.stringify({ text: "kept across restarts" })}\n`,
    );

    // a slow upload: the server is killed while the bytes arrive
    const boundary = "llmatictestboundary";
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (sent === 0) {
          c.enqueue(
            new TextEncoder().encode(
              `--${boundary}\r\ncontent-disposition: form-data; name="purpose"\r\n\r\nsearch\r\n--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="big.jsonl"\r\ncontent-type: application/jsonl\r\n\r\n`,
            ),
          );
        }
        c.enqueue(new TextEncoder().encode(`${JSON.stringify({ text: "x".repeat(1000) })}\n`.repeat(100)));
        sent++;
        await Bun.sleep(20);
      },
    });
    const uploading = fetch(`${server.url}/v1/files`, {
      method: "POST",
      headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
      body,
      duplex: "half",
    } as RequestInit).catch((e) => e);
    // wait until the server has part of it on disk
    const incoming = join(dataDir, "files", ".incoming");
    while (!(readdirSync(incoming).length > 0 && sent > 10)) await Bun.sleep(20);
    server.proc.kill("SIGKILL");
    await server.proc.exited;
    await uploading;
    server = await startServerProcess(args());
    client = clientFor(server);
    const ids = (await client.files.list()).data.map((f) => f.id);
    expect(ids).toContain(kept.id);
    expect((await client.files.list()).data.some((f) => f.filename === "big.jsonl")).toBe(false);
    expect(readdirSync(incoming)).toEqual([]);
  }, 60_000);
});

describe("edits", () => {
  test("instruction and input through the chat template; n choices; usage", async () => {
    const r = await (
      await post("/edits", {
        model: MODEL,
        instruction: "Fix the spelling",
        input: "helo wrld",
        n: 2,
        temperature: 0.5,
      })
    ).json();
    expect(specErrors("CreateEditResponse", r)).toEqual([]);
    expect((r as { object: string }).object).toBe("edit");
    const rr = r as {
      choices: { index: number; text: string }[];
      usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
      model: string;
    };
    expect(rr.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(rr.usage.total_tokens).toBe(rr.usage.prompt_tokens + rr.usage.completion_tokens);
    expect(rr.model).toBe(MODEL);
    // an OpenAI edit model name stands for the default model
    const aliased = (await (
      await post("/edits", { model: "text-davinci-edit-001", instruction: "x", input: "y" })
    ).json()) as { model: string };
    expect(aliased.model).toBe(MODEL);
  });
});

const RELATED = "\n\n---\n\nThe above passage is related to:";

/** The mean log-probability of the query's tokens after a document, from /v1/completions echo logprobs. */
async function meanQueryLogprob(doc: string, query: string): Promise<number> {
  const sep = [...vocab.tokenize("<|endoftext|>", false, true)];
  const q = [...vocab.tokenize(` ${query}`, false, false)];
  const tokens = [...sep, ...vocab.tokenize(doc, false, false), ...vocab.tokenize(RELATED, false, false), ...q];
  const r = await client.completions.create({ model: MODEL, prompt: tokens, echo: true, logprobs: 0, max_tokens: 0 });
  const lps = (r.choices[0]?.logprobs?.token_logprobs ?? []).slice(-q.length) as number[];
  return lps.reduce((a, b) => a + b, 0) / lps.length;
}

describe("search", () => {
  test("scores equal 100 x (mean log p(query | document) - mean log p(query | empty)), documents in order", async () => {
    const documents = ["White House", "hospital", "school", "The cat sat on the mat."];
    const query = "the president";
    const r = (await (await post("/engines/ada/search", { query, documents })).json()) as {
      object: string;
      model: string;
      data: { document: number; score: number }[];
    };
    expect(specErrors("CreateSearchResponse", r)).toEqual([]);
    expect(r.model).toBe(MODEL);
    expect(r.data.map((d) => d.document)).toEqual([0, 1, 2, 3]);
    const empty = await meanQueryLogprob("", query);
    for (const d of r.data) {
      const expected = 100 * ((await meanQueryLogprob(documents[d.document] as string, query)) - empty);
      expect(Math.abs(d.score - expected)).toBeLessThan(0.002);
    }
    // the same request scores the same
    const again = (await (await post("/engines/ada/search", { query, documents })).json()) as typeof r;
    expect(again.data).toEqual(r.data);
  });

  test("with a file: keyword prefilter, rerank, max_rerank, return_metadata, and a 400 when nothing matches", async () => {
    const f = await upload(
      jsonl([
        { text: "The president lives in the White House", metadata: "m0" },
        { text: "Cats and dogs", metadata: "m1" },
        { text: "The president of the club", metadata: "m2" },
        { text: "Unrelated words entirely", metadata: "m3" },
      ]),
      "search",
    );
    const r = (await (
      await post(`/engines/${MODEL}/search`, { query: "president", file: f.id, return_metadata: true })
    ).json()) as {
      data: { document: number; score: number; text: string; metadata: string }[];
    };
    expect(r.data.map((d) => d.document).sort()).toEqual([0, 2]);
    expect(r.data[0]?.score).toBeGreaterThanOrEqual(r.data[1]?.score as number);
    for (const d of r.data) expect(d.metadata).toBe(`m${d.document}`);
    const one = (await (
      await post(`/engines/${MODEL}/search`, { query: "president", file: f.id, max_rerank: 1 })
    ).json()) as typeof r;
    expect(one.data).toHaveLength(1);
    const none = await post(`/engines/${MODEL}/search`, { query: "zebra", file: f.id });
    expect(none.status).toBe(400);
    expect(((await none.json()) as { error: { message: string } }).error.message).toMatch(/No similar documents/);
    const tooMany = await post(`/engines/${MODEL}/search`, { query: "x", documents: Array(201).fill("d") });
    expect(tooMany.status).toBe(400);
    const unknown = await post(`/engines/${MODEL}/search`, { query: "x", file: "file-000000000000000000000000" });
    expect(unknown.status).toBe(404);
  });
});

describe("answers and classifications", () => {
  test("answers: OpenAI's prompt with the most relevant document last, the spec's shape", async () => {
    const r = (await (
      await post("/answers", {
        model: "curie",
        question: "which puppy is happy?",
        examples: [["What is human life expectancy in the United States?", "78 years."]],
        examples_context: "In 2017, U.S. life expectancy was 78.6 years.",
        documents: ["Puppy A is happy.", "Puppy B is sad."],
        max_tokens: 5,
        return_prompt: true,
      })
    ).json()) as {
      object: string;
      model: string;
      answers: string[];
      completion: string;
      selected_documents: { document: number; text: string }[];
      prompt: string;
    };
    expect(specErrors("CreateAnswerResponse", r)).toEqual([]);
    expect(r).toMatchObject({ object: "answer", model: MODEL });
    expect(r.completion).toMatch(/^cmpl-/);
    expect(r.answers).toHaveLength(1);
    expect(r.selected_documents.map((d) => d.text)).toEqual(["Puppy A is happy. ", "Puppy B is sad. "]);
    expect(r.prompt).toStartWith("Please answer the question according to the above context.\n===\nContext: In 2017");
    expect(r.prompt).toContain("Q: What is human life expectancy in the United States?\nA: 78 years.");
    expect(r.prompt).toEndWith("===\nQ: which puppy is happy?\nA:");
    // expand completion
    const x = (await (
      await post("/answers", {
        model: MODEL,
        question: "q?",
        examples: [["a", "b"]],
        examples_context: "c",
        documents: [],
        expand: ["completion"],
        max_tokens: 2,
      })
    ).json()) as { completion: { object: string } };
    expect(x.completion.object).toBe("text_completion");
  });

  test("classifications: the label is always one of labels, over many seeds; a file of examples", async () => {
    const labels = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const r = (await (
        await post("/classifications", {
          model: MODEL,
          query: `It is a raining day :( number ${i}`,
          examples: [
            ["A happy moment", "Positive"],
            ["I am sad.", "negative"],
            ["I am feeling awesome", "Positive"],
          ],
          labels: ["Positive", "Negative", "Neutral"],
          temperature: 1,
        })
      ).json()) as {
        object: string;
        label: string;
        selected_examples: { label: string }[];
        model: string;
        search_model: string;
      };
      expect(specErrors("CreateClassificationResponse", r)).toEqual([]);
      expect(["Positive", "Negative", "Neutral"]).toContain(r.label);
      expect(r.selected_examples.map((e) => e.label).sort()).toEqual(["Negative", "Positive", "Positive"]);
      labels.add(r.label);
    }
    const f = await upload(
      jsonl([
        { text: "good day today", label: "Positive" },
        { text: "bad day today", label: "Negative" },
        { text: "a day", label: "Neutral" },
      ]),
      "classifications",
    );
    const r = (await (
      await post("/classifications", { model: MODEL, query: "what a day", file: f.id, return_prompt: true })
    ).json()) as {
      label: string;
      prompt: string;
    };
    expect(["Positive", "Negative", "Neutral"]).toContain(r.label);
    expect(r.prompt).toStartWith("Please classify a piece of text into the following categories:");
    expect(r.prompt).toEndWith("Text: what a day\nCategory:");
  }, 60_000);
});

describe("moderations", () => {
  test("every category scored by the model, judged as P(yes) / (P(yes) + P(no))", async () => {
    const r = await client.moderations.create({
      model: "text-moderation-latest",
      input: ["I want to hurt them.", "Hello there"],
    });
    expect(specErrors("CreateModerationResponse", r)).toEqual([]);
    expect(r.model).toBe(MODEL);
    expect(r.results).toHaveLength(2);
    for (const res of r.results) {
      const scores = res.category_scores as unknown as Record<string, number>;
      const cats = res.categories as unknown as Record<string, boolean>;
      expect(Object.keys(scores)).toContain("harassment");
      for (const [k, v] of Object.entries(scores)) {
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(1);
        expect(cats[k]).toBe(v >= 0.5);
      }
      expect(res.flagged).toBe(Object.values(cats).some(Boolean));
    }
  }, 60_000);
});

describe("batches", () => {
  const line = (i: number, over: Record<string, unknown> = {}) => ({
    custom_id: `req-${i}`,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: MODEL, messages: [{ role: "user", content: `question ${i}` }], max_tokens: 4, ...over },
  });

  test("the official client runs a batch; outputs and errors in OpenAI's shapes", async () => {
    const f = await upload(jsonl([line(0), line(1), line(2, { temperature: 9 }), line(3)]), "batch");
    let b = await client.batches.create({
      input_file_id: f.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    expect(b.id).toMatch(/^batch_/);
    // the input file cannot be deleted while the batch uses it
    const busy = await errorOf(client.files.delete(f.id));
    if (b.status !== "completed") expect(busy.status).toBe(409);
    while (!["completed", "failed", "cancelled"].includes(b.status)) {
      await Bun.sleep(100);
      b = await client.batches.retrieve(b.id);
    }
    expect(b.status).toBe("completed");
    expect(b.request_counts).toEqual({ total: 4, completed: 3, failed: 1 });
    const out = (await (await client.files.content(b.output_file_id as string)).text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(out.map((o) => o.custom_id).sort()).toEqual(["req-0", "req-1", "req-3"]);
    for (const o of out) {
      expect(o.response.status_code).toBe(200);
      expect(o.response.body.object).toBe("chat.completion");
      expect(specErrors("CreateChatCompletionResponse", o.response.body)).toEqual([]);
    }
    const err = (await (await client.files.content(b.error_file_id as string)).text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(err).toHaveLength(1);
    expect(err[0]).toMatchObject({
      custom_id: "req-2",
      response: { status_code: 400, body: { error: { param: "temperature" } } },
    });
    expect((await client.files.retrieve(b.output_file_id as string)).purpose).toBe("batch_output");
    expect((await client.batches.list()).data.map((x) => x.id)).toContain(b.id);
    // an unknown file, a file of another purpose, a line for another endpoint
    expect(
      (
        await errorOf(
          client.batches.create({
            input_file_id: "file-000000000000000000000000",
            endpoint: "/v1/chat/completions",
            completion_window: "24h",
          }),
        )
      ).status,
    ).toBe(404);
    const notBatch = await upload(jsonl([{ text: "x" }]), "search");
    expect(
      (
        await errorOf(
          client.batches.create({
            input_file_id: notBatch.id,
            endpoint: "/v1/chat/completions",
            completion_window: "24h",
          }),
        )
      ).status,
    ).toBe(400);
    expect(
      (
        await errorOf(
          client.batches.create({ input_file_id: f.id, endpoint: "/v1/completions", completion_window: "24h" }),
        )
      ).status,
    ).toBe(400);
  }, 60_000);

  test("a batch interrupted by kill -9 finishes after the restart, with no line done twice", async () => {
    const n = 24;
    const f = await upload(
      jsonl(Array.from({ length: n }, (_, i) => line(i, { max_tokens: 24, ignore_eos: true }))),
      "batch",
    );
    const b = await client.batches.create({
      input_file_id: f.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    // let part of it finish, then kill the server outright
    for (;;) {
      const cur = await client.batches.retrieve(b.id);
      if (cur.request_counts && cur.request_counts.completed >= 4) break;
      await Bun.sleep(20);
    }
    server.proc.kill("SIGKILL");
    await server.proc.exited;
    server = await startServerProcess(args());
    client = clientFor(server);
    let cur = await client.batches.retrieve(b.id);
    expect(cur.request_counts?.completed).toBeGreaterThanOrEqual(4);
    while (cur.status !== "completed") {
      expect(["in_progress", "finalizing", "validating"]).toContain(cur.status);
      await Bun.sleep(100);
      cur = await client.batches.retrieve(b.id);
    }
    const out = (await (await client.files.content(cur.output_file_id as string)).text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const ids = out.map((o) => o.custom_id);
    expect(ids).toHaveLength(n);
    expect(new Set(ids).size).toBe(n);
    expect(cur.request_counts).toEqual({ total: n, completed: n, failed: 0 });
  }, 120_000);

  test("cancel: what finished stays, the rest never runs", async () => {
    const f = await upload(
      jsonl(Array.from({ length: 40 }, (_, i) => line(i, { max_tokens: 40, ignore_eos: true }))),
      "batch",
    );
    const b = await client.batches.create({
      input_file_id: f.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    await client.batches.cancel(b.id);
    let cur = await client.batches.retrieve(b.id);
    while (cur.status === "cancelling") {
      await Bun.sleep(50);
      cur = await client.batches.retrieve(b.id);
    }
    expect(cur.status).toBe("cancelled");
    expect(cur.request_counts?.completed).toBeLessThan(40);
    expect((await errorOf(client.batches.cancel(b.id))).status).toBe(400);
  }, 60_000);
});
