import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, DEFAULTS, HELP, loadConfig, modelIdOf, OPTIONS } from "../src/config";

describe("configuration", () => {
  test("defaults", () => {
    const { config, help } = loadConfig([], {});
    expect(help).toBe(false);
    expect(config.host).toBe("127.0.0.1");
    expect(config.port).toBe(3000);
    expect(config.parallel).toBe(DEFAULTS.parallel);
    expect(config.threads).toBeGreaterThan(0);
    expect(config.apiKeys).toEqual([]);
  });

  test("flags, llama.cpp-style short flags, repeatable --model", () => {
    const { config } = loadConfig(
      ["-m", "a.gguf", "--model", "b.gguf", "-c", "2048", "-t", "3", "-np", "2", "--port", "8080", "--api-key", "k"],
      {},
    );
    expect(config.models.map((p) => p.split("/").at(-1))).toEqual(["a.gguf", "b.gguf"]);
    expect(config).toMatchObject({ ctxSize: 2048, threads: 3, parallel: 2, port: 8080, apiKeys: ["k"] });
  });

  test("--sgemm-min-batch, --qgemm-max-batch: flag, environment, default", () => {
    expect(loadConfig([], {}).config.sgemmMinBatch).toBe(-1);
    expect(loadConfig(["--sgemm-min-batch", "0"], {}).config.sgemmMinBatch).toBe(0);
    expect(loadConfig([], { LLMATIC_SGEMM_MIN_BATCH: "16" }).config.sgemmMinBatch).toBe(16);
    expect(() => loadConfig(["--sgemm-min-batch", "-2"], {})).toThrow(/--sgemm-min-batch/);
    expect(loadConfig([], {}).config.qgemmMaxBatch).toBe(16);
    expect(loadConfig(["--qgemm-max-batch", "0"], {}).config.qgemmMaxBatch).toBe(0);
  });

  test("flags win over environment, environment over the config file", () => {
    const dir = mkdtempSync(join(tmpdir(), "llmatic-cfg-"));
    const file = join(dir, "llmatic.config.json");
    // node-llmatic's keys
    writeFileSync(
      file,
      JSON.stringify({ modelPath: "./m.gguf", numCtxTokens: 1024, numThreads: 1, temperature: 0.1, topK: 5 }),
    );
    const { config } = loadConfig(["--config", file, "-t", "4"], { LLMATIC_CTX_SIZE: "512" });
    expect(config.models).toEqual([join(dir, "m.gguf")]);
    expect(config.ctxSize).toBe(512);
    expect(config.threads).toBe(4);
    expect(config.sampling.temperature).toBe(0.1);
    expect(config.sampling.topK).toBe(5);
  });

  test("bad values are clear errors", () => {
    expect(() => loadConfig(["--port", "abc"], {})).toThrow(ConfigError);
    expect(() => loadConfig(["--bogus"], {})).toThrow(/bogus/);
    expect(() => loadConfig(["-np", "0"], {})).toThrow(/--parallel/);
    const dir = mkdtempSync(join(tmpdir(), "llmatic-cfg-"));
    const file = join(dir, "c.json");
    writeFileSync(file, JSON.stringify({ what: 1 }));
    expect(() => loadConfig(["--config", file], {})).toThrow(/unknown key "what"/);
  });

  test("a config file gets the same range checks as flags (one option table)", () => {
    const dir = mkdtempSync(join(tmpdir(), "llmatic-cfg-"));
    const file = join(dir, "c.json");
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ parallel: 0 }, /"parallel" must be an integer between 1 and 256/],
      [{ port: 70000 }, /"port" must be an integer between 0 and 65535/],
      [{ ctxSize: "big" }, /"ctxSize" must be an integer/],
      [{ numThreads: 2.5 }, /"numThreads" must be an integer/],
      [{ temperature: 5 }, /"temperature" must be a number between 0 and 2/],
      [{ isolation: "none" }, /"isolation" must be one of process, thread/],
      [{ deterministic: "yes" }, /"deterministic" must be true or false/],
    ];
    for (const [obj, re] of bad) {
      writeFileSync(file, JSON.stringify(obj));
      expect(() => loadConfig(["--config", file], {})).toThrow(re);
    }
    // and the environment the same as flags
    expect(() => loadConfig([], { LLMATIC_PARALLEL: "0" })).toThrow(
      /LLMATIC_PARALLEL must be an integer between 1 and 256/,
    );
    expect(() => loadConfig(["--temp", "9"], {})).toThrow(/--temp must be a number between 0 and 2/);
  });

  test("several API keys: repeated flags, the environment, a key file", () => {
    const dir = mkdtempSync(join(tmpdir(), "llmatic-cfg-"));
    const keys = join(dir, "keys");
    writeFileSync(keys, "# team keys\nk3\n\n  k4  \n");
    expect(loadConfig(["--api-key", "k1", "--api-key", "k2", "--api-key-file", keys], {}).config.apiKeys).toEqual([
      "k1",
      "k2",
      "k3",
      "k4",
    ]);
    expect(loadConfig([], { LLMATIC_API_KEY: "a,b" }).config.apiKeys).toEqual(["a", "b"]);
    writeFileSync(keys, "# nothing\n");
    expect(() => loadConfig(["--api-key-file", keys], {})).toThrow(/holds no key/);
  });

  test("--help lists every option of the table with its variable", () => {
    for (const o of OPTIONS) {
      expect(HELP).toContain(`--${o.flag}`);
      if (o.env !== false) expect(HELP).toContain(`LLMATIC_${o.flag.toUpperCase().replaceAll("-", "_")}`);
    }
  });

  test("--help", () => {
    expect(loadConfig(["--help"], {}).help).toBe(true);
  });

  test("model ids come from file names", () => {
    expect(modelIdOf("/x/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf")).toBe("Qwen2.5-0.5B-Instruct-Q4_K_M");
  });
});
