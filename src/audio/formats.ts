// A transcription's segments in each of OpenAI's response formats (json, text,
// srt, verbose_json, vtt), and its streaming events. Pure functions.

/** One segment of a transcription (times in seconds). */
export interface TranscriptSegment {
  start: number;
  end: number;
  text: string;
  tokens: { id: number; text: string; p: number; start?: number; end?: number }[];
  avgLogprob: number;
  noSpeechProb: number;
}

export type ResponseFormat = "json" | "text" | "srt" | "verbose_json" | "vtt";

export interface Transcript {
  task: "transcribe" | "translate";
  language: string;
  /** seconds of audio */
  duration: number;
  segments: TranscriptSegment[];
}

/** whisper.cpp's segments begin with the space that separated them from the one before. */
export const fullText = (segments: TranscriptSegment[]): string =>
  segments
    .map((s) => s.text)
    .join("")
    .trim();

/** 3723.5 -> "01:02:03,500" (srt) or "01:02:03.500" (vtt). */
export function timestamp(seconds: number, separator: "," | "."): string {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.floor((ms % 60_000) / 1000);
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${pad(h)}:${pad(m)}:${pad(s)}${separator}${pad(ms % 1000, 3)}`;
}

export function toSrt(segments: TranscriptSegment[]): string {
  return segments
    .map((s, i) => `${i + 1}\n${timestamp(s.start, ",")} --> ${timestamp(s.end, ",")}\n${s.text.trim()}\n`)
    .join("\n");
}

export function toVtt(segments: TranscriptSegment[]): string {
  const cues = segments.map((s) => `${timestamp(s.start, ".")} --> ${timestamp(s.end, ".")}\n${s.text.trim()}\n`);
  return `WEBVTT\n\n${cues.join("\n")}`;
}

/** Words with times: whisper.cpp's tokens, a token without a leading space continuing the word before. */
export function words(segments: TranscriptSegment[]): { word: string; start: number; end: number }[] {
  const out: { word: string; start: number; end: number }[] = [];
  for (const s of segments) {
    let first = true;
    for (const t of s.tokens) {
      if (!t.text.trim()) continue;
      const start = t.start ?? s.start;
      const end = t.end ?? s.end;
      const last = out.at(-1);
      if (last && !first && !/^\s/.test(t.text)) {
        last.word += t.text;
        last.end = end;
      } else out.push({ word: t.text.trim(), start, end });
      first = false;
    }
  }
  return out;
}

/** OpenAI's verbose_json: the text, language, duration, segments (and words when asked). */
export function toVerboseJson(t: Transcript, withWords: boolean, withSegments: boolean) {
  return {
    task: t.task,
    language: t.language,
    duration: t.duration,
    text: fullText(t.segments),
    ...(withSegments
      ? {
          segments: t.segments.map((s, id) => ({
            id,
            seek: 0,
            start: s.start,
            end: s.end,
            text: s.text,
            tokens: s.tokens.map((k) => k.id),
            temperature: 0,
            avg_logprob: s.avgLogprob,
            compression_ratio: compressionRatio(s.text),
            no_speech_prob: s.noSpeechProb,
          })),
        }
      : {}),
    ...(withWords ? { words: words(t.segments) } : {}),
  };
}

/** OpenAI's compression_ratio: text bytes over their gzip size (high for repeated text). */
function compressionRatio(text: string): number {
  const bytes = Buffer.from(text);
  if (bytes.length === 0) return 0;
  return bytes.length / Bun.gzipSync(bytes).length;
}

/** The body of a finished transcription in `format`: a JSON object, or text with its content type. */
export function formatTranscript(
  t: Transcript,
  format: ResponseFormat,
  granularities: ("word" | "segment")[],
  usage: { seconds: number },
): { json: unknown } | { text: string; contentType: string } {
  switch (format) {
    case "text":
      return { text: `${fullText(t.segments)}\n`, contentType: "text/plain; charset=utf-8" };
    case "srt":
      return { text: toSrt(t.segments), contentType: "application/x-subrip; charset=utf-8" };
    case "vtt":
      return { text: toVtt(t.segments), contentType: "text/vtt; charset=utf-8" };
    case "verbose_json":
      return {
        json: {
          ...toVerboseJson(
            t,
            granularities.includes("word"),
            granularities.length === 0 || granularities.includes("segment"),
          ),
          usage: { type: "duration", seconds: Math.ceil(usage.seconds) },
        },
      };
    default:
      return { json: { text: fullText(t.segments), usage: { type: "duration", seconds: Math.ceil(usage.seconds) } } };
  }
}

/** OpenAI's transcription stream: one delta per segment, then done with the whole text. */
export const deltaEvent = (text: string) => ({ type: "transcript.text.delta", delta: text });
export const doneEvent = (segments: TranscriptSegment[], seconds: number) => ({
  type: "transcript.text.done",
  text: fullText(segments),
  usage: { type: "duration", seconds: Math.ceil(seconds) },
});
