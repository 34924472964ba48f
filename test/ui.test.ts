// The chat page in a real browser: Debian's headless Chromium driven by
// playwright-core (no browser download). A screenshot is kept as an artifact.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { TINY_MODEL_PATH } from "../src/models/synthetic";
import { type ServerProcess, startServerProcess } from "./server-process";

// the callbacks given to waitForFunction run in the page
declare const document: {
  querySelectorAll(selector: string): { length: number };
  querySelector(selector: string): { textContent: string | null } | null;
};

export const ARTIFACTS = join(import.meta.dir, "..", "test-artifacts");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

let server: ServerProcess;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is required for the browser test (${CHROMIUM}); .ci/run installs it with apt-get install chromium`,
    );
  }
  server = await startServerProcess(["-m", TINY_MODEL_PATH, "--api-key", "ui-key"]);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

test("the chat page streams an answer from the model and shows tokens/s", async () => {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const requests: string[] = [];
  page.on("request", (r) => requests.push(r.url()));
  await page.goto(`${server.url}/`);
  await page.fill("[data-testid=key]", "ui-key");
  await page.dispatchEvent("[data-testid=key]", "change");
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=model] option").length > 0);
  expect(await page.inputValue("[data-testid=model]")).toBe("llmatic-tiny");

  await page.fill("[data-testid=max]", "48");
  await page.fill("[data-testid=input]", "Hello there, tiny model!");
  await page.click("[data-testid=send]");
  // the answer grows while it streams, then the status line reports the speed
  await page.waitForFunction(
    () => (document.querySelector("[data-testid=answer]")?.textContent ?? "").length > 0,
    null,
    {
      timeout: 30_000,
    },
  );
  await page.waitForSelector("[data-testid=status][data-tps]", { timeout: 60_000 });
  const tps = Number(await page.getAttribute("[data-testid=status]", "data-tps"));
  expect(tps).toBeGreaterThan(0);
  expect(await page.textContent("[data-testid=status]")).toContain("48 tokens");
  expect(await page.textContent("[data-testid=status]")).toContain("tokens/s");
  expect(await page.locator(".msg.user").textContent()).toBe("Hello there, tiny model!");

  mkdirSync(ARTIFACTS, { recursive: true });
  const shot = join(ARTIFACTS, "chat-page.png");
  await page.screenshot({ path: shot, fullPage: true });
  expect(existsSync(shot)).toBe(true);
  // only our own origin was contacted: the page works offline
  expect(requests.every((u) => u.startsWith(server.url))).toBe(true);
  expect(errors).toEqual([]);
}, 90_000);

test("the docs page renders from local assets", async () => {
  const page = await browser.newPage();
  const requests: string[] = [];
  page.on("request", (r) => requests.push(r.url()));
  await page.goto(`${server.url}/docs`);
  await page.waitForSelector(".swagger-ui .info .title", { timeout: 30_000 });
  expect(await page.textContent(".swagger-ui .info .title")).toContain("llmatic");
  expect(requests.every((u) => u.startsWith(server.url))).toBe(true);
  await page.screenshot({ path: join(ARTIFACTS, "docs-page.png") });
}, 60_000);
