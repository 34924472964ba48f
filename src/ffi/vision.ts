// Images through llama.cpp's libmtmd (native/src/vision.cpp): a projector loaded
// beside its text model, image files read into the parts mtmd makes of them
// (text tokens some projectors put around an image, then the image's own
// tokens), encoded by the vision tower into embeddings, and those decoded into
// a sequence of the text model's context.
import { type Pointer, ptr } from "bun:ffi";
import { existsSync } from "node:fs";
import { DomainError } from "../errors";
import type { Context } from "./context";
import { ErrorOut, lib, NativeObject } from "./library";
import type { Model } from "./model";

/** What a projector reads and how its image tokens take positions. */
export interface VisionCaps {
  images: boolean;
  audio: boolean;
  /** M-RoPE: an image takes fewer positions than it has tokens (Qwen2-VL and its kin) */
  mrope: boolean;
}

/** One part of an image as the model reads it. */
export type ImagePiece =
  | { kind: "text"; tokens: Int32Array }
  | { kind: "image"; index: number; nTokens: number; nPos: number };

export class Vision extends NativeObject {
  readonly caps: VisionCaps;

  private constructor(
    handle: Pointer,
    private readonly model: Model,
    owned = true,
  ) {
    super(handle, owned);
    const c = lib().llmatic_vision_caps(handle);
    this.caps = { images: (c & 1) !== 0, audio: (c & 2) !== 0, mrope: (c & 4) !== 0 };
  }

  static load(path: string, model: Model, nThreads: number): Vision {
    if (!existsSync(path)) throw new DomainError("model_not_found", `projector file not found: ${path}`);
    const err = new ErrorOut();
    const h = lib().llmatic_vision_load(Buffer.from(`${path}\0`), model.handle, nThreads, err.ptr) as Pointer | null;
    if (!h) throw new DomainError("model_load_failed", err.take(`libmtmd could not load ${path}`));
    return new Vision(h, model);
  }

  /** Takes over a projector another thread of this process loaded and released. */
  static adopt(handle: number, model: Model): Vision {
    return new Vision(handle as unknown as Pointer, model);
  }

  protected free(handle: Pointer): void {
    lib().llmatic_vision_free(handle);
  }

  /** Reads the request's image `n`; a file that is not an image, or has more than `maxPixels`, is a 400. */
  read(bytes: Uint8Array, maxPixels: number, n: number): ImageTokens {
    const param = "messages";
    if (bytes.length === 0) throw new DomainError("invalid_request", `image ${n} is empty`, param);
    const status = new Int32Array(1);
    const err = new ErrorOut();
    const h = lib().llmatic_image_tokenize(
      this.handle,
      ptr(bytes),
      BigInt(bytes.length),
      maxPixels,
      ptr(status),
      err.ptr,
    ) as Pointer | null;
    if (!h) throw new DomainError("invalid_request", `image ${n}: ${err.take("it could not be read")}`, param);
    return new ImageTokens(h);
  }

  /** The embeddings of an image part: nTokens x the model's input width, row by row. */
  encode(image: ImageTokens, piece: Extract<ImagePiece, { kind: "image" }>): Float32Array {
    const out = new Float32Array(piece.nTokens * this.model.nEmbdInput);
    const rc = lib().llmatic_image_encode(this.handle, image.handle, piece.index, ptr(out), BigInt(out.length));
    if (rc !== 0) throw new DomainError("internal", `the projector could not encode the image (status ${rc})`);
    return out;
  }

  /**
   * Decodes an encoded image part into `seq` from position `nPast`, in batches
   * of `nBatch`; returns the next free position.
   */
  decode(ctx: Context, part: ImagePart, embd: Float32Array, nPast: number, seq: number, nBatch: number): number {
    const next = new Int32Array(1);
    const rc = lib().llmatic_vision_decode(
      this.handle,
      ctx.handle,
      part.handle,
      ptr(embd),
      nPast,
      seq,
      nBatch,
      ptr(next),
    );
    if (rc !== 0) throw new DomainError("internal", `decoding the image's embeddings failed (status ${rc})`);
    return next[0] as number;
  }
}

/** One image file as mtmd prepared it. */
export class ImageTokens extends NativeObject {
  protected free(handle: Pointer): void {
    lib().llmatic_image_free(handle);
  }

  constructor(handle: Pointer) {
    super(handle);
  }

  pieces(): ImagePiece[] {
    const n = lib().llmatic_image_n_parts(this.handle);
    const kind = new Int32Array(1);
    const nPos = new Int32Array(1);
    const out: ImagePiece[] = [];
    for (let i = 0; i < n; i++) {
      const count = lib().llmatic_image_part(this.handle, i, ptr(kind), ptr(nPos), null, 0);
      if (kind[0] === 0) {
        const tokens = new Int32Array(count);
        if (count > 0) lib().llmatic_image_part(this.handle, i, ptr(kind), ptr(nPos), ptr(tokens), count);
        out.push({ kind: "text", tokens });
      } else if (kind[0] === 1) {
        out.push({ kind: "image", index: i, nTokens: count, nPos: nPos[0] as number });
      } else {
        throw new DomainError("invalid_request", "the projector made audio of an image");
      }
    }
    return out;
  }

  /** A copy of image part `index` that outlives this object (and may cross to the decode thread). */
  take(index: number): ImagePart {
    const h = lib().llmatic_image_take_part(this.handle, index) as Pointer | null;
    if (!h) throw new DomainError("internal", `image part ${index} is missing`);
    return new ImagePart(h);
  }
}

/** An image part (its token layout, for positions and attention) without the file it came from. */
export class ImagePart extends NativeObject {
  constructor(handle: Pointer) {
    super(handle);
  }

  static adopt(handle: number): ImagePart {
    return new ImagePart(handle as unknown as Pointer);
  }

  protected free(handle: Pointer): void {
    lib().llmatic_image_part_free(handle);
  }
}
