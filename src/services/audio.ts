// Speech to text (POST /v1/audio/transcriptions, /v1/audio/translations) with
// a whisper.cpp model: the request's fields checked, the audio sent to the
// model's engine process (decoded and transcribed there), the segments
// gathered or streamed, and the answer in the asked format.
import {
  deltaEvent,
  doneEvent,
  formatTranscript,
  type ResponseFormat,
  type Transcript,
  type TranscriptSegment,
} from "../audio/formats";
import type { Engine } from "../engine/engine";
import type { TranscribeOptions } from "../engine/types";
import { DomainError, invalid, notFound } from "../errors";
import { describeModel } from "../models/describe";
import { WHISPER_FILE_NAME } from "../models/whisper-file";
import type { ModelRegistry } from "../registry";

/** OpenAI's upload limit for audio. */
export const MAX_AUDIO_BYTES = 25 * 1024 * 1024;

const FORMATS: ResponseFormat[] = ["json", "text", "srt", "verbose_json", "vtt"];

export interface AudioRequest {
  task: "transcribe" | "translate";
  file: Uint8Array;
  model: string | null;
  prompt?: string;
  responseFormat: ResponseFormat;
  temperature?: number;
  temperatureInc?: number;
  language?: string;
  granularities: ("word" | "segment")[];
  stream: boolean;
}

/** The fields of the multipart form, as text, checked into a request. */
export function audioRequest(
  task: AudioRequest["task"],
  file: Uint8Array | null,
  fields: Map<string, string[]>,
): AudioRequest {
  if (!file) throw invalid("Missing required parameter: 'file'.", "file", "missing_required_parameter");
  const one = (k: string) => fields.get(k)?.at(-1);
  const format = (one("response_format") ?? "json") as ResponseFormat;
  if (!FORMATS.includes(format))
    throw invalid(`response_format must be one of ${FORMATS.join(", ")} (got '${format}')`, "response_format");
  /** a form field that holds a number from 0 to 1, or nothing */
  const unit = (k: string): number | undefined => {
    const raw = one(k);
    if (raw === undefined || raw === "") return undefined;
    const v = Number(raw);
    if (!Number.isFinite(v) || v < 0 || v > 1) throw invalid(`${k} must be a number from 0 to 1`, k);
    return v;
  };
  const temperature = unit("temperature");
  const temperatureInc = unit("temperature_inc");
  const language = one("language")?.trim().toLowerCase() || undefined;
  if (language !== undefined && task === "translate")
    throw invalid("translations take no language: the answer is English", "language");
  if (language !== undefined && !/^[a-z]{2,3}$/.test(language))
    throw invalid("language must be an ISO-639-1 code such as 'en' or 'de'", "language");
  const granularities = [
    ...(fields.get("timestamp_granularities[]") ?? []),
    ...(fields.get("timestamp_granularities") ?? []),
  ];
  for (const g of granularities)
    if (g !== "word" && g !== "segment")
      throw invalid(`timestamp_granularities holds 'word' or 'segment' (got '${g}')`, "timestamp_granularities");
  if (granularities.length && format !== "verbose_json")
    throw invalid("timestamp_granularities needs response_format verbose_json", "timestamp_granularities");
  const streamRaw = one("stream");
  const stream = streamRaw === "true" || streamRaw === "1";
  if (streamRaw !== undefined && !stream && streamRaw !== "false" && streamRaw !== "0")
    throw invalid("stream must be true or false", "stream");
  if (stream && task === "translate") throw invalid("translations are not streamed", "stream");
  if (stream && format !== "json" && format !== "text")
    throw invalid("a streamed transcription is json or text", "response_format");
  const prompt = one("prompt");
  if (prompt !== undefined && prompt.length > 4096) throw invalid("prompt is longer than 4096 characters", "prompt");
  return {
    task,
    file,
    model: one("model")?.trim() || null,
    prompt: prompt || undefined,
    responseFormat: format,
    temperature,
    temperatureInc,
    language,
    granularities: granularities as ("word" | "segment")[],
    stream,
  };
}

/** OpenAI's speech-to-text model names: they mean the first speech model served. */
const SPEECH_ALIAS = /^(whisper|gpt-4o(-mini)?-transcribe)/i;

/**
 * The speech model a request means: the one it names, else (for OpenAI's
 * "whisper-1", "gpt-4o-transcribe" and the like, or no model) the first speech model served.
 */
export function speechModelId(registry: ModelRegistry, requested: string | null): string {
  if (requested && registry.entry(requested)) return requested;
  const speech = registry.list().find((m) => {
    if (m.engine) return m.engine.info.kind === "speech";
    // a hub model not downloaded yet is known by its file name
    if (m.source.kind === "hf") return WHISPER_FILE_NAME.test(m.source.file ?? "");
    return describeModel(m.source.path)?.architecture === "whisper";
  });
  if (!speech || (requested && !SPEECH_ALIAS.test(requested))) {
    throw notFound(
      requested
        ? `The model '${requested}' does not exist or is not a speech model`
        : "no speech model is served: serve a whisper.cpp model (ggml-*.bin) with --model",
      "model",
      "model_not_found",
    );
  }
  return speech.id;
}

function optionsOf(engine: Engine, r: AudioRequest): TranscribeOptions {
  if (engine.info.kind !== "speech")
    throw invalid(`${engine.info.id} is not a speech-to-text model: serve a whisper.cpp model for audio`, "model");
  if (r.task === "translate" && !engine.info.multilingual)
    throw invalid(`${engine.info.id} is English-only: it cannot translate`, "model");
  return {
    language: r.task === "translate" ? undefined : r.language,
    prompt: r.prompt,
    translate: r.task === "translate",
    temperature: r.temperature,
    temperatureInc: r.temperatureInc,
    tokenTimestamps: r.granularities.includes("word"),
  };
}

/** Runs a transcription to its end and formats it. */
export async function transcribe(engine: Engine, r: AudioRequest, signal: AbortSignal) {
  const options = optionsOf(engine, r);
  const segments: TranscriptSegment[] = [];
  for await (const e of engine.transcribe(r.file, options, signal)) {
    if (e.type === "error") throw DomainError.from(e);
    if (e.type === "segments") segments.push(...e.segments);
    else {
      const t: Transcript = {
        task: r.task,
        language: languageName(e.language || r.language || "en", r.task),
        duration: e.duration,
        segments,
      };
      return formatTranscript(t, r.responseFormat, r.granularities, { seconds: e.duration });
    }
  }
  throw new DomainError("cancelled", "the transcription was cancelled");
}

/**
 * A streamed transcription: the first event (or the error that refused it)
 * comes before the response starts; then a delta per segment, then done.
 */
export async function transcribeStream(engine: Engine, r: AudioRequest, signal: AbortSignal) {
  const options = optionsOf(engine, r);
  const local = new AbortController();
  const abort = () => local.abort();
  signal.addEventListener("abort", abort, { once: true });
  const g = engine.transcribe(r.file, options, local.signal);
  const first = await g.next();
  if (first.done) {
    signal.removeEventListener("abort", abort);
    throw new DomainError("cancelled", "the transcription was cancelled");
  }
  if (first.value.type === "error") {
    signal.removeEventListener("abort", abort);
    throw DomainError.from(first.value);
  }
  async function* frames() {
    const segments: TranscriptSegment[] = [];
    try {
      for (let e = first.value; ; ) {
        if (e.type === "error") throw DomainError.from(e);
        if (e.type === "segments") {
          for (const s of e.segments) {
            segments.push(s);
            yield deltaEvent(segments.length === 1 ? s.text.trimStart() : s.text);
          }
        } else {
          yield doneEvent(segments, e.duration);
          return;
        }
        const n = await g.next();
        if (n.done) return;
        e = n.value;
      }
    } finally {
      signal.removeEventListener("abort", abort);
      await g.return(undefined);
    }
  }
  return { frames: frames(), abort };
}

/** OpenAI's verbose_json names the language ("english"); a translation is English. */
function languageName(code: string, task: AudioRequest["task"]): string {
  if (task === "translate") return "english";
  try {
    return new Intl.DisplayNames(["en"], { type: "language" }).of(code)?.toLowerCase() ?? code;
  } catch {
    return code;
  }
}
