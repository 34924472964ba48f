// Images in chat with a generated vision model: the tiny chat model and a tiny
// LLaVA-style projector beside it (random weights: the answers are gibberish,
// the image tokens, the cache and the errors are real). llama.cpp's own test
// image and generated PNGs; all four dialects; URLs off and on.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { llamaSourceDir } from "../native/build";
import { ensureVisionModel, TINY_MODEL_PATH } from "../src/models/synthetic";
import { TINY_PROJECTOR_IMAGE_TOKENS } from "../src/vision/mmproj-synth";
import { flatPng, png } from "./png";
import { type ServerProcess, startServerProcess } from "./server-process";

setDefaultTimeout(120_000);

const VISION = "llmatic-tiny-vision";
const TEXT = "llmatic-tiny";
let server: ServerProcess;
let urlServer: ServerProcess;
let images: ReturnType<typeof Bun.serve>;
let client: OpenAI;
let jpeg: Buffer;
const dataUri = (b: Buffer, type = "image/jpeg") => `data:${type};base64,${b.toString("base64")}`;
const gradient = png(40, 30, (x, y) => [x * 6, y * 8, (x ^ y) * 4]);
const other = png(40, 30, (x, y) => [255 - x * 6, y * 3, 77]);

beforeAll(async () => {
  jpeg = readFileSync(join(await llamaSourceDir(), "tools", "mtmd", "test-1.jpeg"));
  const { model } = await ensureVisionModel();
  // the projector is found beside the model (mmproj-*.gguf); the tiny model has none
  server = await startServerProcess(["-m", model, "-m", TINY_MODEL_PATH, "--threads", "1", "--max-image-mb", "1"]);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0 });
  images = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req) {
      const path = new URL(req.url).pathname;
      if (path === "/cat.jpg") return new Response(jpeg, { headers: { "content-type": "image/jpeg" } });
      if (path === "/page.html") return new Response("<html></html>", { headers: { "content-type": "text/html" } });
      if (path === "/big.png")
        return new Response(Buffer.alloc(3 * 1024 * 1024), { headers: { "content-type": "image/png" } });
      return new Response("no", { status: 404 });
    },
  });
  urlServer = await startServerProcess(["-m", model, "--threads", "1", "--allow-image-urls", "--max-image-mb", "2"]);
});

afterAll(async () => {
  await server?.stop();
  await urlServer?.stop();
  images?.stop(true);
});

type Part = OpenAI.Chat.Completions.ChatCompletionContentPart;
const imagePart = (url: string): Part => ({ type: "image_url", image_url: { url } });
const text = (t: string): Part => ({ type: "text", text: t });

async function chat(content: Part[] | string, model = VISION, base = client) {
  return base.chat.completions.create({
    model,
    max_tokens: 2,
    temperature: 0,
    messages: [{ role: "user", content }],
  });
}

async function errorOf(p: Promise<unknown>): Promise<{ status: number; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as { status: number; message: string };
    return { status: err.status, message: err.message };
  }
  throw new Error("the request was accepted");
}

describe("vision", () => {
  test("the vision model is listed with vision, the text model without", async () => {
    const list = (await (await fetch(`${server.url}/v1/models`)).json()) as {
      data: { id: string; capabilities: string[] }[];
    };
    expect(list.data.find((m) => m.id === VISION)?.capabilities).toContain("vision");
    expect(list.data.find((m) => m.id === TEXT)?.capabilities).not.toContain("vision");
    const show = (await (
      await fetch(`${server.url}/api/show`, { method: "POST", body: JSON.stringify({ model: VISION }) })
    ).json()) as {
      capabilities: string[];
    };
    expect(show.capabilities).toContain("vision");
  });

  test("an image takes the projector's image tokens in usage and in the context", async () => {
    const one = await chat([imagePart(dataUri(jpeg)), text("What is this?")]);
    const two = await chat([
      imagePart(dataUri(jpeg)),
      imagePart(dataUri(gradient, "image/png")),
      text("What is this?"),
    ]);
    // the second image: its 16 tokens (an image's marker joins its neighbours without a separator)
    expect(TINY_PROJECTOR_IMAGE_TOKENS).toBe(16);
    expect((two.usage?.prompt_tokens ?? 0) - (one.usage?.prompt_tokens ?? 0)).toBe(TINY_PROJECTOR_IMAGE_TOKENS);
    // an image of any size and format is the same 16 tokens for this projector
    const tiny = await chat([
      imagePart(
        dataUri(
          png(3, 5, () => [9, 9, 9]),
          "image/png",
        ),
      ),
      text("What is this?"),
    ]);
    expect(tiny.usage?.prompt_tokens).toBe(one.usage?.prompt_tokens);
    expect(one.choices[0]?.finish_reason).toBe("length");
  });

  test("what the model reads is the image: another image changes its next-token distribution, the cache does not", async () => {
    const first = async (img: Buffer) => {
      const r = await client.chat.completions.create({
        model: VISION,
        max_tokens: 1,
        temperature: 0,
        logprobs: true,
        top_logprobs: 5,
        messages: [{ role: "user", content: [imagePart(dataUri(img, "image/png")), text("Which colour?")] }],
      });
      return {
        top: (r.choices[0]?.logprobs?.content?.[0]?.top_logprobs ?? []).map((t) => t.logprob),
        cached: r.usage?.prompt_tokens_details?.cached_tokens ?? 0,
      };
    };
    const a = await first(gradient);
    const again = await first(gradient);
    const b = await first(other);
    expect(a.top).toHaveLength(5);
    expect(b.top).not.toEqual(a.top);
    // the second time the image comes from the cache: the same distribution
    expect(again.cached).toBeGreaterThan(TINY_PROJECTOR_IMAGE_TOKENS);
    for (const [i, lp] of again.top.entries()) expect(lp).toBeCloseTo(a.top[i] as number, 3);
  });

  test("a second turn with the same image reuses the cache; another image does not", async () => {
    const first = [imagePart(dataUri(gradient, "image/png")), text("Describe it.")];
    const t1 = await chat(first);
    const p1 = t1.usage?.prompt_tokens ?? 0;
    const t2 = await client.chat.completions.create({
      model: VISION,
      max_tokens: 2,
      temperature: 0,
      messages: [
        { role: "user", content: first },
        { role: "assistant", content: t1.choices[0]?.message.content ?? "" },
        { role: "user", content: "And the colours?" },
      ],
    });
    // all of the first turn's prompt, image included (its last token, the "\n" after "assistant",
    // may merge with the answer's first characters when the conversation is tokenized again)
    expect(t2.usage?.prompt_tokens_details?.cached_tokens ?? 0).toBeGreaterThanOrEqual(p1 - 1);
    // the same words with another image: the cache holds the prompt up to the image, not past it
    const t3 = await chat([imagePart(dataUri(other, "image/png")), text("Describe it.")]);
    const cached = t3.usage?.prompt_tokens_details?.cached_tokens ?? 0;
    expect(cached).toBeLessThan(p1 - TINY_PROJECTOR_IMAGE_TOKENS);
  });

  test("the four dialects carry images to the same prompt", async () => {
    const openai = await chat([imagePart(dataUri(jpeg)), text("What is this?")]);
    const responses = await client.responses.create({
      model: VISION,
      max_output_tokens: 2,
      input: [
        {
          role: "user",
          content: [
            { type: "input_image", image_url: dataUri(jpeg), detail: "auto" },
            { type: "input_text", text: "What is this?" },
          ],
        },
      ],
    });
    const anthropic = await new Anthropic({ baseURL: server.url, apiKey: "none", maxRetries: 0 }).messages.create({
      model: VISION,
      max_tokens: 2,
      messages: [
        {
          role: "user",
          content: [
            { type: "image", source: { type: "base64", media_type: "image/jpeg", data: jpeg.toString("base64") } },
            { type: "text", text: "What is this?" },
          ],
        },
      ],
    });
    const ollama = await new Ollama({ host: server.url }).chat({
      model: VISION,
      options: { num_predict: 2 },
      messages: [{ role: "user", content: "What is this?", images: [jpeg.toString("base64")] }],
    });
    const p = openai.usage?.prompt_tokens ?? 0;
    // every dialect writes the image's marker and the text beside it as they are
    expect(p).toBeGreaterThan(TINY_PROJECTOR_IMAGE_TOKENS);
    expect(responses.usage?.input_tokens).toBe(p);
    expect(anthropic.usage.input_tokens + (anthropic.usage.cache_read_input_tokens ?? 0)).toBe(p);
    expect(ollama.prompt_eval_count).toBe(p);
    expect(responses.status).toBe("incomplete");
    expect(anthropic.stop_reason).toBe("max_tokens");
    // count_tokens reads the image too (no encode)
    const count = await new Anthropic({ baseURL: server.url, apiKey: "none", maxRetries: 0 }).messages.countTokens({
      model: VISION,
      messages: [
        {
          role: "user",
          content: [
            { type: "image", source: { type: "base64", media_type: "image/jpeg", data: jpeg.toString("base64") } },
            { type: "text", text: "What is this?" },
          ],
        },
      ],
    });
    expect(count.input_tokens).toBe(anthropic.usage.input_tokens + (anthropic.usage.cache_read_input_tokens ?? 0));
  });

  test("a Responses conversation keeps its images for the next turn; /api/generate takes images too", async () => {
    const first = await client.responses.create({
      model: VISION,
      max_output_tokens: 2,
      input: [
        {
          role: "user",
          content: [
            { type: "input_image", image_url: dataUri(gradient, "image/png"), detail: "auto" },
            { type: "input_text", text: "What is this?" },
          ],
        },
      ],
    });
    const next = await client.responses.create({
      model: VISION,
      max_output_tokens: 2,
      previous_response_id: first.id,
      input: "And now?",
    });
    // the stored turn's image is in the prompt again (and in the cache)
    expect(next.usage?.input_tokens ?? 0).toBeGreaterThan((first.usage?.input_tokens ?? 0) + 2);
    expect(next.usage?.input_tokens_details?.cached_tokens ?? 0).toBeGreaterThan(TINY_PROJECTOR_IMAGE_TOKENS);
    const gen = (await (
      await fetch(`${server.url}/api/generate`, {
        method: "POST",
        body: JSON.stringify({
          model: VISION,
          stream: false,
          prompt: "What is this?",
          images: [gradient.toString("base64")],
          options: { num_predict: 1 },
        }),
      })
    ).json()) as { prompt_eval_count: number };
    const plain = (await (
      await fetch(`${server.url}/api/generate`, {
        method: "POST",
        body: JSON.stringify({ model: VISION, stream: false, prompt: "What is this?", options: { num_predict: 1 } }),
      })
    ).json()) as { prompt_eval_count: number };
    expect(gen.prompt_eval_count - plain.prompt_eval_count).toBe(TINY_PROJECTOR_IMAGE_TOKENS);
  });

  test("a stream with an image runs like any other", async () => {
    const stream = await client.chat.completions.create({
      model: VISION,
      max_tokens: 4,
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: [imagePart(dataUri(jpeg)), text("Go on.")] }],
    });
    let usage: OpenAI.CompletionUsage | undefined;
    let finish: string | null | undefined;
    for await (const c of stream) {
      usage = c.usage ?? usage;
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    expect(finish).toBe("length");
    expect(usage?.completion_tokens).toBe(4);
  });

  test("bad images are 400s in each dialect's shape", async () => {
    const notImage = await errorOf(chat([imagePart(dataUri(Buffer.from("hello world"), "image/png")), text("x")]));
    expect(notImage.status).toBe(400);
    expect(notImage.message).toContain("not an image");
    const notData = await errorOf(chat([imagePart("data:text/plain;base64,aGk="), text("x")]));
    expect(notData.message).toContain("not an image");
    // --max-image-mb 1
    const tooLarge = await errorOf(chat([imagePart(dataUri(Buffer.alloc(1100 * 1024))), text("x")]));
    expect(tooLarge.status).toBe(400);
    expect(tooLarge.message).toContain("larger than 1 MB");
    const tooManyPixels = await errorOf(chat([imagePart(dataUri(flatPng(8000, 7000), "image/png")), text("x")]));
    expect(tooManyPixels.status).toBe(400);
    expect(tooManyPixels.message).toContain("8000x7000");
    const url = await errorOf(chat([imagePart("https://example.com/cat.jpg"), text("x")]));
    expect(url.status).toBe(400);
    expect(url.message).toContain("--allow-image-urls");
    const noProjector = await errorOf(chat([imagePart(dataUri(jpeg)), text("x")], TEXT));
    expect(noProjector.status).toBe(400);
    expect(noProjector.message).toContain("needs a vision model");
    // a prompt with an image that does not fit the slot is refused (its image is read, never encoded)
    const long = await errorOf(chat([imagePart(dataUri(jpeg)), text("word ".repeat(3000))]));
    expect(long.status).toBe(400);
    expect(long.message).toContain("context window");
    const marker = await errorOf(chat([imagePart(dataUri(jpeg)), text("a <__media__> b")]));
    expect(marker.message).toContain("stands for an image");
    // Anthropic's and Ollama's shapes
    const a = await fetch(`${server.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: VISION,
        max_tokens: 1,
        messages: [
          {
            role: "user",
            content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "aGVsbG8=" } }],
          },
        ],
      }),
    });
    expect(a.status).toBe(400);
    expect(await a.json()).toMatchObject({ type: "error", error: { type: "invalid_request_error" } });
    const o = await fetch(`${server.url}/api/chat`, {
      method: "POST",
      body: JSON.stringify({
        model: TEXT,
        stream: false,
        messages: [{ role: "user", content: "x", images: [jpeg.toString("base64")] }],
      }),
    });
    expect(o.status).toBe(400);
    expect(((await o.json()) as { error: string }).error).toContain("needs a vision model");
    // the server is fine afterwards
    expect((await chat([imagePart(dataUri(jpeg)), text("x")])).choices).toHaveLength(1);
  });

  test("with --allow-image-urls an http(s) image is fetched, within its size limit", async () => {
    const base = new OpenAI({ baseURL: `${urlServer.url}/v1`, apiKey: "none", maxRetries: 0 });
    const at = (p: string) => `http://127.0.0.1:${images.port}${p}`;
    const fetched = await chat([imagePart(at("/cat.jpg")), text("What is this?")], VISION, base);
    const inline = await chat([imagePart(dataUri(jpeg)), text("What is this?")], VISION, base);
    expect(fetched.usage?.prompt_tokens).toBe(inline.usage?.prompt_tokens);
    const missing = await errorOf(chat([imagePart(at("/nope.png")), text("x")], VISION, base));
    expect(missing.status).toBe(400);
    expect(missing.message).toContain("HTTP 404");
    const html = await errorOf(chat([imagePart(at("/page.html")), text("x")], VISION, base));
    expect(html.message).toContain("not an image");
    const big = await errorOf(chat([imagePart(at("/big.png")), text("x")], VISION, base));
    expect(big.message).toContain("larger than 2 MB");
  });
});
