// Images of a chat request as every dialect gives them (OpenAI's image_url
// parts, Responses' input_image, Anthropic's image blocks, Ollama's images):
// each becomes the media marker in its message's text, and the message carries
// its images in the same order. Pure; the server fetches URLs later, when it
// may (--allow-image-urls).
import { type ImageInput, MEDIA_MARKER } from "../engine/types";
import { invalid } from "../errors";
import type { TemplateMessage } from "../ffi/chat";

const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;

/** Base64 image bytes as a client sent them (standard or URL-safe alphabet). */
export function imageFromBase64(data: string, param: string): ImageInput {
  if (!BASE64.test(data) && !BASE64URL.test(data)) throw invalid("the image is not valid base64", param);
  if (data.trim().length === 0) throw invalid("the image is empty", param);
  return { data: BASE64.test(data) ? data : Buffer.from(data, "base64url").toString("base64") };
}

/** An image URL: a data: URI (its bytes) or an http(s) URL (fetched by the server, when it may). */
export function imageFromUrl(url: string, param: string): ImageInput {
  if (url.startsWith("data:")) {
    const comma = url.indexOf(",");
    if (comma < 0) throw invalid("the data: URI has no data", param);
    const meta = url.slice(5, comma);
    const body = url.slice(comma + 1);
    if (meta && !/^image\//i.test(meta) && !/^application\/octet-stream/i.test(meta)) {
      throw invalid(`the data: URI holds '${meta.split(";")[0]}', not an image`, param);
    }
    if (/;base64$/i.test(meta)) return imageFromBase64(body, param);
    return { data: Buffer.from(decodeURIComponent(body), "latin1").toString("base64") };
  }
  if (/^https?:\/\//i.test(url)) {
    try {
      new URL(url);
    } catch {
      throw invalid(`'${url.slice(0, 200)}' is not a valid URL`, param);
    }
    return { url };
  }
  throw invalid("an image URL must be a data: URI or an http(s) URL", param);
}

/** A message's images, collected while it is converted. */
export class ImageList {
  readonly images: ImageInput[] = [];

  /** Records an image; its place in the text is the returned marker. */
  add(image: ImageInput): string {
    this.images.push(image);
    return MEDIA_MARKER;
  }

  /** The message with its images (unchanged when it has none). */
  attach<M extends TemplateMessage>(m: M): M {
    if (this.images.length) m.images = [...(m.images ?? []), ...this.images];
    return m;
  }
}

/**
 * A message's parts as one text: text parts joined by `sep`, each image's
 * marker put between its neighbours as it is (llama-server writes them so).
 */
export function joinParts(parts: { text: string; image: boolean }[], sep: string): string {
  let out = "";
  parts.forEach((p, i) => {
    const prev = parts[i - 1];
    if (prev && !prev.image && !p.image) out += sep;
    out += p.text;
  });
  return out;
}

/** Every image of a conversation, in message order (the order of the markers the template renders). */
export function imagesOf(messages: readonly TemplateMessage[]): ImageInput[] {
  return messages.flatMap((m) => m.images ?? []);
}
