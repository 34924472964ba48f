// The images of a chat request before it goes to the engine: every image is
// bytes (base64) within the size limit; an http(s) URL is fetched first, with
// a size and time limit, only when the server allows it (--allow-image-urls,
// off by default: a server that fetches what a request names can be pointed
// at hosts its clients cannot reach).
import { DomainError } from "../errors";
import type { GenerateRequest, ImageInput } from "./types";

export interface ImagePolicy {
  allowUrls: boolean;
  /** the largest image file, in bytes */
  maxBytes: number;
  /** a URL that has not answered with the whole image by then is refused */
  timeoutMs: number;
}

export const DEFAULT_IMAGE_POLICY: ImagePolicy = { allowUrls: false, maxBytes: 20 * 1024 * 1024, timeoutMs: 10_000 };

const mb = (n: number) => `${Math.round((n / 1024 / 1024) * 10) / 10} MB`;

async function fetchImage(url: string, policy: ImagePolicy, signal: AbortSignal | undefined): Promise<ImageInput> {
  if (!policy.allowUrls) {
    throw new DomainError(
      "invalid_request",
      "image URLs are not fetched by this server (start it with --allow-image-urls): send the image as a data: URI or base64",
      "messages",
    );
  }
  const timeout = AbortSignal.timeout(policy.timeoutMs);
  const both = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let res: Response;
  try {
    res = await fetch(url, { signal: both, redirect: "follow" });
  } catch (e) {
    const why = timeout.aborted ? `no answer within ${policy.timeoutMs / 1000} s` : (e as Error).message;
    throw new DomainError(
      "invalid_request",
      `the image at ${url.slice(0, 200)} could not be fetched: ${why}`,
      "messages",
    );
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new DomainError(
      "invalid_request",
      `the image at ${url.slice(0, 200)} answered HTTP ${res.status}`,
      "messages",
    );
  }
  const type = res.headers.get("content-type") ?? "";
  if (type && !/^image\//i.test(type) && !/^application\/octet-stream/i.test(type)) {
    await res.body?.cancel();
    throw new DomainError(
      "invalid_request",
      `${url.slice(0, 200)} is '${type.split(";")[0]}', not an image`,
      "messages",
    );
  }
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > policy.maxBytes) {
    await res.body?.cancel();
    throw new DomainError(
      "invalid_request",
      `the image at ${url.slice(0, 200)} is larger than ${mb(policy.maxBytes)}`,
      "messages",
    );
  }
  const chunks: Uint8Array[] = [];
  let n = 0;
  try {
    for await (const c of res.body ?? []) {
      n += c.length;
      if (n > policy.maxBytes) {
        throw new DomainError(
          "invalid_request",
          `the image at ${url.slice(0, 200)} is larger than ${mb(policy.maxBytes)}`,
          "messages",
        );
      }
      chunks.push(c);
    }
  } catch (e) {
    if (e instanceof DomainError) throw e;
    const why = timeout.aborted ? `not all of it came within ${policy.timeoutMs / 1000} s` : (e as Error).message;
    throw new DomainError(
      "invalid_request",
      `the image at ${url.slice(0, 200)} could not be fetched: ${why}`,
      "messages",
    );
  }
  return { data: Buffer.concat(chunks).toString("base64") };
}

/** `req` with every image as checked bytes (URLs fetched); the same object when it has no images. */
export async function resolveImages(
  req: GenerateRequest,
  policy: ImagePolicy,
  signal?: AbortSignal,
): Promise<GenerateRequest> {
  if (req.prompt.type !== "chat" || !req.prompt.chat.messages.some((m) => m.images?.length)) return req;
  let count = 0;
  const messages = await Promise.all(
    req.prompt.chat.messages.map(async (m) => {
      if (!m.images?.length) return m;
      const images = await Promise.all(
        m.images.map(async (img) => {
          const i = count++;
          const got = "url" in img ? await fetchImage(img.url, policy, signal) : img;
          if (!("data" in got)) throw new DomainError("internal", "an image without bytes");
          // base64: 4 characters per 3 bytes
          if (Math.floor((got.data.length * 3) / 4) > policy.maxBytes + 2) {
            throw new DomainError("invalid_request", `image ${i} is larger than ${mb(policy.maxBytes)}`, "messages");
          }
          return got;
        }),
      );
      return { ...m, images };
    }),
  );
  return { ...req, prompt: { ...req.prompt, chat: { ...req.prompt.chat, messages } } };
}
