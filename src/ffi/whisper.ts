// whisper.cpp through the shim (native/src/audio.cpp): a speech model, audio
// decoding to 16 kHz mono PCM, and transcriptions that run on a native thread
// of their own (started, polled, cancelled from JS; no callback into JS).
import { type Pointer, ptr, toArrayBuffer } from "bun:ffi";
import { existsSync } from "node:fs";
import { DomainError } from "../errors";
import { ErrorOut, lib, NativeObject, takeString } from "./library";

/** whisper.cpp's sample rate: every input is resampled to it. */
export const SAMPLE_RATE = 16000;

/** Audio file bytes (wav, mp3, flac, ogg vorbis) -> 16 kHz mono float PCM. */
export function decodeAudio(bytes: Uint8Array): Float32Array {
  if (bytes.length === 0) throw new DomainError("invalid_request", "the audio file is empty", "file");
  const out = new BigUint64Array(1);
  const n = new BigInt64Array(1);
  const err = new ErrorOut();
  const rc = lib().llmatic_audio_decode(ptr(bytes), BigInt(bytes.length), ptr(out), ptr(n), err.ptr);
  if (rc !== 0) throw new DomainError("invalid_request", err.take("the file is not audio llmatic can decode"), "file");
  const p = Number(out[0]) as unknown as Pointer;
  try {
    return new Float32Array(toArrayBuffer(p, 0, Number(n[0]) * 4).slice(0));
  } finally {
    lib().llmatic_audio_free(p);
  }
}

export interface WhisperInfo {
  multilingual: boolean;
  n_vocab: number;
  n_audio_ctx: number;
  n_audio_state: number;
  n_audio_layer: number;
  n_text_ctx: number;
  n_text_layer: number;
  n_mels: number;
  type: string;
}

/** A whisper.cpp model and its context (one transcription at a time). */
export class WhisperModel extends NativeObject {
  readonly info: WhisperInfo;

  private constructor(
    handle: Pointer,
    readonly path: string,
  ) {
    super(handle);
    this.info = JSON.parse(takeString(lib().llmatic_whisper_info(handle) as Pointer) ?? "{}") as WhisperInfo;
  }

  static load(path: string): WhisperModel {
    if (!existsSync(path)) throw new DomainError("model_not_found", `model file not found: ${path}`);
    const err = new ErrorOut();
    const h = lib().llmatic_whisper_load(Buffer.from(`${path}\0`), err.ptr) as Pointer | null;
    if (!h) throw new DomainError("model_load_failed", err.take(`whisper.cpp could not load ${path}`));
    return new WhisperModel(h, path);
  }

  protected free(handle: Pointer): void {
    lib().llmatic_whisper_free(handle);
  }
}

/** A segment as the shim reports it (times in centiseconds). */
export interface RawSegment {
  t0: number;
  t1: number;
  text: string;
  no_speech_prob: number;
  avg_logprob: number;
  tokens: { id: number; text: string; p: number; t0?: number; t1?: number }[];
}

export interface PollResult {
  state: "running" | "done" | "failed" | "cancelled";
  segments: RawSegment[];
  language?: string;
  error?: string;
}

/** One whisper_full run on its own native thread. */
export class Transcription extends NativeObject {
  private constructor(handle: Pointer) {
    super(handle);
  }

  static start(model: WhisperModel, pcm: Float32Array, options: Record<string, unknown>): Transcription {
    const err = new ErrorOut();
    const h = lib().llmatic_transcribe_start(
      model.handle,
      ptr(pcm),
      BigInt(pcm.length),
      Buffer.from(`${JSON.stringify(options)}\0`),
      err.ptr,
    ) as Pointer | null;
    if (!h) throw new DomainError("invalid_request", err.take("the transcription could not start"));
    return new Transcription(h);
  }

  /** The segments decoded since the last poll, and the state. */
  poll(): PollResult {
    return JSON.parse(takeString(lib().llmatic_transcribe_poll(this.handle) as Pointer) ?? "{}") as PollResult;
  }

  /** Blocks this thread until a segment is pending or the run ended, at most `ms`; true when it ended. */
  wait(ms: number): boolean {
    return lib().llmatic_transcribe_wait(this.handle, ms) !== 0;
  }

  cancel(): void {
    lib().llmatic_transcribe_cancel(this.handle);
  }

  /** cancels and waits for the thread */
  protected free(handle: Pointer): void {
    lib().llmatic_transcribe_free(handle);
  }
}
