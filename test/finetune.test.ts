// Fine-tunes that really train: the tiny model learns to answer " blue", the
// result keeps the base's metadata, is served, survives restarts and can be
// deleted; cancel, unsupported architectures and a killed runner are handled.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type OpenAI from "openai";
import { toFile } from "openai";
import { Model } from "../src/ffi/model";
import { Trainer } from "../src/ffi/trainer";
import { pack, tokenizeExample } from "../src/finetune/data";
import { GgmlType, type MetaEntry, readGguf, ValueType, writeGguf } from "../src/gguf/gguf";
import { TINY_MODEL_PATH } from "../src/models/synthetic";
import { clientFor, type ServerProcess, startServerProcess } from "./server-process";
import { specErrors } from "./spec";

const MODEL = "llmatic-tiny";
const PROMPTS = [
  "The sky is",
  "My favourite colour is",
  "The sea looks",
  "Her eyes were",
  "The car was painted",
  "Blueberries are",
  "The flag shows",
  "His shirt is",
  "The ocean is",
  "Sapphires are",
  "The jeans are",
  "The bird was",
  "Water looks",
  "The door is",
  "Ice can look",
  "The pen writes",
];

let dataDir: string;
let modelsDir: string;
let server: ServerProcess;
let client: OpenAI;

const args = () => ["-m", modelsDir, "-np", "2", "-c", "4096", "--data-dir", dataDir, "--max-loaded", "2"];
const base = (p: string) => `http://127.0.0.1:${new URL(server.url).port}/v1${p}`;
const post = async (p: string, b: unknown) => {
  const r = await fetch(base(p), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(b),
  });
  return { status: r.status, body: (await r.json()) as any };
};
const get = async (p: string) => (await (await fetch(base(p))).json()) as any;

async function until(job: string, done: (j: any) => boolean, timeoutMs = 120_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const j = await get(`/fine-tunes/${job}`);
    if (done(j)) return j;
    if (Date.now() > deadline) throw new Error(`job ${job} is still ${j.status}`);
    await Bun.sleep(100);
  }
}

/** log p(" blue" | prompt) from completions echo logprobs. */
async function blueLogprob(model: string, prompt: string): Promise<number> {
  const r = await client.completions.create({
    model,
    prompt: `${prompt} blue`,
    echo: true,
    logprobs: 0,
    max_tokens: 0,
  });
  return r.choices[0]?.logprobs?.token_logprobs?.at(-1) as number;
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "llmatic-ft-"));
  modelsDir = mkdtempSync(join(tmpdir(), "llmatic-ft-models-"));
  // the tiny model, and a model of an architecture that cannot train (only its metadata is read)
  await Bun.write(join(modelsDir, `${MODEL}.gguf`), Bun.file(TINY_MODEL_PATH));
  const meta = new Map<string, MetaEntry>([
    ["general.architecture", { type: ValueType.STRING, value: "gpt2" }],
    ["general.name", { type: ValueType.STRING, value: "not trainable" }],
  ]);
  writeGguf(join(modelsDir, "zz-gpt2.gguf"), meta, []);
  server = await startServerProcess(args());
  client = clientFor(server);
});

afterAll(async () => {
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(modelsDir, { recursive: true, force: true });
});

const trainingFile = async () => {
  const lines = PROMPTS.map((p) => JSON.stringify({ prompt: p, completion: " blue" })).join("\n");
  return client.files.create({ file: await toFile(Buffer.from(lines), "blue.jsonl"), purpose: "fine-tune" });
};

describe("the trainer", () => {
  // two short trainings of the tiny model in this process: seconds, more on a busy machine
  test("per-position weights reach the gradient: all-zero weights change nothing, ones do", () => {
    const model = Model.load(TINY_MODEL_PATH, { useMmap: false, repack: false });
    try {
      const eos = model.eogTokens()[0] as number;
      const ex = PROMPTS.map((p) =>
        tokenizeExample({ prompt: p, completion: " blue" }, (t, a) => model.tokenize(t, a, false), eos),
      );
      const cancel = new Int32Array(new SharedArrayBuffer(4));
      const tr = Trainer.create(model, 256, 256, 2, cancel);
      try {
        tr.setAdamW(1e-3);
        const [w] = pack(ex, tr.window, 16, eos, 0);
        const snapshot = () => new Map(tr.tensors().map((t) => [t.name, Buffer.from(t.bytes)]));
        const before = snapshot();
        tr.step(w!.tokens, w!.labels, new Float32Array(tr.window), true);
        const zero = snapshot();
        for (const [name, b] of before)
          expect({ name, same: (zero.get(name) as Buffer).equals(b) }).toEqual({ name, same: true });
        const r = tr.step(w!.tokens, w!.labels, w!.weights, true);
        expect(r.cancelled).toBe(false);
        const one = snapshot();
        expect((one.get("blk.0.attn_q.weight") as Buffer).equals(before.get("blk.0.attn_q.weight") as Buffer)).toBe(
          false,
        );
        // llama.cpp v0.5.0: K and V come from the cache, which has no backward pass
        expect((one.get("blk.0.attn_k.weight") as Buffer).equals(before.get("blk.0.attn_k.weight") as Buffer)).toBe(
          true,
        );
        expect(tr.hookCalls).toBeGreaterThan(0);
        expect([...one.keys()]).not.toContain("token_embd.weight");
      } finally {
        tr.dispose();
      }
    } finally {
      model.dispose();
    }
  }, 60_000);
});

describe("/v1/fine-tunes", () => {
  let job: any;

  test("a fine-tune on 16 examples: the loss falls, ' blue' gets likelier after an unseen prompt", async () => {
    const f = await trainingFile();
    const created = await post("/fine-tunes", {
      training_file: f.id,
      model: MODEL,
      n_epochs: 6,
      batch_size: 16,
      learning_rate_multiplier: 2,
      suffix: "blue",
    });
    expect(created.status).toBe(200);
    expect(specErrors("FineTune", created.body)).toEqual([]);
    expect(created.body.status).toBe("pending");
    job = await until(created.body.id, (j) => ["succeeded", "failed", "cancelled"].includes(j.status));
    expect(job.status).toBe("succeeded");
    expect(specErrors("FineTune", job)).toEqual([]);
    for (const e of job.events) expect(specErrors("FineTuneEvent", e)).toEqual([]);
    const messages = job.events.map((e: any) => e.message);
    expect(messages).toContain("Job started.");
    expect(messages.some((m: string) => /attn_k\/attn_v get no gradient/.test(m))).toBe(true);
    expect(messages.at(-1)).toBe("Job succeeded.");
    expect(job.fine_tuned_model).toMatch(/^llmatic-tiny:ft-llmatic:blue-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d$/);
    // the results file: one row per step, the loss falling
    const csv = (await (await client.files.content(job.result_files[0].id)).text()).trim().split("\n");
    expect(csv[0]).toStartWith(
      "step,elapsed_tokens,elapsed_examples,training_loss,training_sequence_accuracy,training_token_accuracy",
    );
    const losses = csv.slice(1).map((l) => Number(l.split(",")[3]));
    expect(losses).toHaveLength(6);
    expect(losses.at(-1) as number).toBeLessThan(losses[0] as number);
    // served, listed, and it learned: more probability on " blue" after prompts it never saw
    expect((await client.models.list()).data.map((m) => m.id)).toContain(job.fine_tuned_model);
    for (const prompt of ["The grass is", "My car is"]) {
      const before = await blueLogprob(MODEL, prompt);
      const after = await blueLogprob(job.fine_tuned_model, prompt);
      expect(after).toBeGreaterThan(before);
    }
    // the events as a stream: the same events, then [DONE]
    const sse = await (await fetch(base(`/fine-tunes/${job.id}/events?stream=true`))).text();
    const frames = sse
      .split("\n\n")
      .filter((x) => x.startsWith("data: "))
      .map((x) => x.slice(6));
    expect(frames.at(-1)).toBe("[DONE]");
    expect(frames.length - 1).toBe(job.events.length);
    expect(await get(`/fine-tunes/${job.id}/events`)).toMatchObject({ object: "list" });
    // the result keeps the base's chat template and tokenizer: only tensor bytes changed
    const out = readdirSync(join(dataDir, "models")).filter((n) => n.endsWith(".gguf"));
    expect(out).toHaveLength(1);
    const g = readGguf(join(dataDir, "models", out[0] as string));
    const b = readGguf(TINY_MODEL_PATH);
    expect(g.metadata.get("tokenizer.chat_template")?.value).toBe(b.metadata.get("tokenizer.chat_template")?.value);
    expect(g.metadata.get("qwen2.context_length")?.value).toBe(b.metadata.get("qwen2.context_length")?.value);
    expect(g.tensors.find((t) => t.name === "token_embd.weight")?.type).toBe(GgmlType.Q8_0);
    const chat = await client.chat.completions.create({
      model: job.fine_tuned_model,
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 3,
    });
    expect(chat.model).toBe(job.fine_tuned_model);
    // a finished job cannot be cancelled
    expect((await post(`/fine-tunes/${job.id}/cancel`, {})).status).toBe(400);
  }, 180_000);

  test("the fine-tuned model survives a restart; deleting it removes it; base models cannot be deleted", async () => {
    await server.stop();
    server = await startServerProcess(args());
    client = clientFor(server);
    expect((await client.models.list()).data.map((m) => m.id)).toContain(job.fine_tuned_model);
    const r = await client.completions.create({ model: job.fine_tuned_model, prompt: "The grass is", max_tokens: 2 });
    expect(r.model).toBe(job.fine_tuned_model);
    expect((await get(`/fine-tunes/${job.id}`)).status).toBe("succeeded");
    const base = await fetch(`${server.url}/v1/models/${MODEL}`, { method: "DELETE" });
    expect(base.status).toBe(400);
    const del = await client.models.delete(job.fine_tuned_model);
    expect(del).toMatchObject({ id: job.fine_tuned_model, deleted: true });
    expect((await client.models.list()).data.map((m) => m.id)).not.toContain(job.fine_tuned_model);
    expect(readdirSync(join(dataDir, "models")).filter((n) => n.endsWith(".gguf"))).toEqual([]);
    expect(
      (await fetch(`${server.url}/v1/models/${encodeURIComponent(job.fine_tuned_model)}`, { method: "DELETE" })).status,
    ).toBe(404);
  }, 120_000);

  test("cancel mid-job leaves no model", async () => {
    const f = await trainingFile();
    const created = await post("/fine-tunes", {
      training_file: f.id,
      model: MODEL,
      n_epochs: 50,
      batch_size: 1,
      learning_rate_multiplier: 1,
    });
    await until(created.body.id, (j) => j.events.some((e: any) => e.message.startsWith("Training ")));
    const c = await post(`/fine-tunes/${created.body.id}/cancel`, {});
    expect(c.status).toBe(200);
    const j = await until(created.body.id, (x) => ["succeeded", "failed", "cancelled"].includes(x.status));
    expect(j.status).toBe("cancelled");
    expect(j.fine_tuned_model).toBeNull();
    expect(readdirSync(join(dataDir, "models")).filter((n) => n.endsWith(".gguf"))).toEqual([]);
  }, 120_000);

  test("an architecture that cannot train is refused before a job exists", async () => {
    const f = await trainingFile();
    const before = (await get("/fine-tunes")).data.length;
    const r = await post("/fine-tunes", { training_file: f.id, model: "zz-gpt2" });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/architecture 'gpt2' cannot be fine-tuned/);
    expect((await get("/fine-tunes")).data.length).toBe(before);
    // wrong files are refused too
    const search = await client.files.create({
      file: await toFile(Buffer.from('{"text":"x"}\n'), "s.jsonl"),
      purpose: "search" as "fine-tune",
    });
    expect((await post("/fine-tunes", { training_file: search.id })).status).toBe(400);
    expect((await post("/fine-tunes", { training_file: "file-000000000000000000000000" })).status).toBe(404);
  });

  test("killing the runner fails the job, not the server", async () => {
    const f = await trainingFile();
    const created = await post("/fine-tunes", {
      training_file: f.id,
      model: MODEL,
      n_epochs: 50,
      batch_size: 1,
      learning_rate_multiplier: 1,
    });
    await until(created.body.id, (j) => j.events.some((e: any) => e.message.startsWith("Training ")));
    const pids = Bun.spawnSync(["pgrep", "-f", "finetune/child.ts"])
      .stdout.toString()
      .trim()
      .split("\n")
      .filter(Boolean);
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) process.kill(Number(pid), "SIGKILL");
    const j = await until(created.body.id, (x) => ["succeeded", "failed", "cancelled"].includes(x.status));
    expect(j.status).toBe("failed");
    expect(j.events.at(-1).message).toMatch(/killed by SIGKILL/);
    expect(server.exitCode()).toBeNull();
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "still here?" }],
      max_tokens: 2,
    });
    expect(r.choices[0]?.finish_reason).toBe("length");
  }, 120_000);
});
