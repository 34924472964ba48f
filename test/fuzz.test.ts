// CI's short seed of `bun run fuzz`: hostile requests against a real server on
// the tiny model. No answer >= 500 but 501/503, no dropped connection or hang,
// every 4xx an OpenAI error object, and the server healthy afterwards.
import { expect, test } from "bun:test";
import { fuzz } from "../scripts/fuzz";
import { ensureVisionModel, ensureWhisperModel, TINY_MODEL_PATH } from "../src/models/synthetic";
import { startServerProcess } from "./server-process";

test("a seeded run of 300 hostile requests", async () => {
  const s = await startServerProcess([
    "-m",
    TINY_MODEL_PATH,
    "-m",
    await ensureWhisperModel(),
    "-m",
    (await ensureVisionModel()).model,
    "-c",
    "2048",
    "-np",
    "4",
  ]);
  try {
    const report = await fuzz({ url: s.url, seed: 20261201, requests: 300, seconds: 120 });
    expect(report.failures).toEqual([]);
    expect(report.sent).toBe(300);
    expect(report.healthyAfter).toBe(true);
    // the run exercised refusals and real answers both
    expect(report.statuses["400"] ?? 0).toBeGreaterThan(50);
    expect(report.statuses["200"] ?? 0).toBeGreaterThan(20);
    expect(s.exitCode()).toBeNull();
  } finally {
    expect(await s.stop()).toBe(0);
  }
}, 180_000);
