// One prompt cache for all slots: a request whose prefix another slot holds
// (one busy generating) gets that KV copied instead of computing it, and its
// answer is the one it gets cold.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LlamaEngine } from "../src/engine/client";
import { collect, startTiny, textRequest } from "./helpers";

setDefaultTimeout(120_000);

let engine: LlamaEngine;
let cold: LlamaEngine;
let one: LlamaEngine;
// batch-invariant numerics (no repacking): a copied prefix must give bit-identical logits
const config = { parallel: 2, nCtx: 4096, repack: false };
const system = `You are a careful assistant. ${"Answer in full sentences and cite the rules you follow. ".repeat(40)}`;
const greedy = { temperature: 0 };

beforeAll(async () => {
  [engine, cold, one] = await Promise.all([
    startTiny(config),
    startTiny(config),
    // one slot, and host memory for what it held before
    startTiny({ ...config, parallel: 1, nCtx: 2048, cacheRamBytes: 64 * 1024 * 1024 }),
  ]);
});

afterAll(async () => {
  await Promise.all([engine?.close(), cold?.close(), one?.close()]);
});

test("a prefix a busy slot holds is copied, not recomputed, and gives the same answer", async () => {
  const systemTokens = (await engine.tokenize(system)).length;
  expect(systemTokens).toBeGreaterThan(400);
  // A generates for a while in one slot
  const a = engine.generate(
    textRequest(`${system}\nQuestion: what is red?`, { maxTokens: 200, ignoreEos: true, sampling: greedy }),
  );
  const first = await a.next();
  expect(first.value).toMatchObject({ type: "start", cachedTokens: 0 });
  for (let i = 0; i < 3; i++) expect((await a.next()).value?.type).toBe("text");
  // B shares A's system prompt and arrives while A is busy: the other slot is empty
  const bReq = textRequest(`${system}\nQuestion: what is blue?`, { maxTokens: 24, sampling: greedy });
  const b = await collect(engine, bReq);
  const start = b.events[0] as { type: string; cachedTokens: number };
  expect(start.type).toBe("start");
  expect(start.cachedTokens).toBeGreaterThanOrEqual(systemTokens - 1);
  expect(engine.stats().prefixCopied ?? 0).toBeGreaterThanOrEqual(systemTokens - 1);
  // the same request on an engine that computes everything
  const c = await collect(cold, bReq);
  expect((c.events[0] as { cachedTokens: number }).cachedTokens).toBe(0);
  expect(b.texts[0]?.join("")).toBe(c.texts[0]?.join(""));
  // A went on untouched
  let n = 3;
  for await (const e of a) if (e.type === "text") n++;
  expect(n).toBeGreaterThan(150);
});

test("a prefix evicted from the only slot comes back from host memory (--cache-ram)", async () => {
  const systemTokens = (await one.tokenize(system)).length;
  const first = await collect(
    one,
    textRequest(`${system}\nQuestion: what is red?`, { maxTokens: 4, sampling: greedy }),
  );
  expect(first.error).toBeNull();
  // another conversation takes the slot: what it held goes to host memory
  await collect(one, textRequest("Something else entirely, and short.", { maxTokens: 4, sampling: greedy }));
  expect(one.stats().hostCacheBytes ?? 0).toBeGreaterThan(0);
  const req = textRequest(`${system}\nQuestion: what is green?`, { maxTokens: 24, sampling: greedy });
  const back = await collect(one, req);
  expect((back.events[0] as { cachedTokens: number }).cachedTokens).toBeGreaterThanOrEqual(systemTokens - 1);
  expect(one.stats().prefixRestored ?? 0).toBeGreaterThanOrEqual(systemTokens - 1);
  // the answer the other engine gives (which computed this prefix itself)
  const c = await collect(cold, req);
  expect(back.texts[0]?.join("")).toBe(c.texts[0]?.join(""));
});

test("with --cache-dir an evicted prefix is on disk and survives a restart; a damaged file is dropped, not loaded", async () => {
  const dir = mkdtempSync(join(tmpdir(), "llmatic-prefixes-"));
  // no host memory at all: what leaves the slot goes only to disk
  const onDisk = { ...config, parallel: 1, nCtx: 2048, cacheRamBytes: 0, cacheDir: dir };
  const files = () =>
    readdirSync(dir, { recursive: true })
      .map(String)
      .filter((f) => f.endsWith(".prefix"));
  try {
    const a = await startTiny(onDisk);
    const systemTokens = (await a.tokenize(system)).length;
    try {
      await collect(a, textRequest(`${system}\nQuestion: what is red?`, { maxTokens: 4, sampling: greedy }));
      await collect(a, textRequest("Something else entirely, and short.", { maxTokens: 4, sampling: greedy }));
      // written in the background: temporary name, fsync, rename
      for (let i = 0; i < 100 && files().length === 0; i++) await Bun.sleep(50);
      expect(files()).toHaveLength(1);
      expect(a.stats().hostCacheBytes ?? 0).toBe(0);
    } finally {
      await a.close();
    }
    // a new engine (a restart) finds the file and restores the prefix from it
    const req = textRequest(`${system}\nQuestion: what is green?`, { maxTokens: 24, sampling: greedy });
    const b = await startTiny(onDisk);
    try {
      const back = await collect(b, req);
      expect((back.events[0] as { cachedTokens: number }).cachedTokens).toBeGreaterThanOrEqual(systemTokens - 1);
      expect(b.stats().prefixRestored ?? 0).toBeGreaterThanOrEqual(systemTokens - 1);
      const c = await collect(cold, req);
      expect(back.texts[0]?.join("")).toBe(c.texts[0]?.join(""));
    } finally {
      await b.close();
    }
    // one flipped byte in the state: its hash no longer matches, so the file is
    // deleted and the prompt computed, with the same answer
    const file = join(dir, files()[0] as string);
    const bytes = readFileSync(file);
    bytes[bytes.length - 100] = (bytes[bytes.length - 100] as number) ^ 0xff;
    writeFileSync(file, bytes);
    const d = await startTiny(onDisk);
    try {
      const again = await collect(d, req);
      expect((again.events[0] as { cachedTokens: number }).cachedTokens).toBe(0);
      expect(again.texts[0]?.join("")).toBe((await collect(cold, req)).texts[0]?.join(""));
      expect(files().some((f) => join(dir, f) === file)).toBe(false);
    } finally {
      await d.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
