// The engine of a speech model (whisper.cpp): it loads the model, decodes each
// request's audio and transcribes it on a native thread, polling for segments
// so they stream as they are decoded. One transcription runs at a time (one
// whisper context); the others wait in order. It speaks the same messages as
// the text engine (engine/types.ts); what only a text model can do is refused.
import { readFileSync } from "node:fs";
import { DomainError } from "../errors";
import { drainNativeLogs, lib } from "../ffi/library";
import { decodeAudio, SAMPLE_RATE, Transcription, WhisperModel } from "../ffi/whisper";
import type { EngineConfig, FromEngine, ModelInfo, ToEngine, TranscribeEvent, TranscribeOptions } from "./types";

/** the engine thread waits this long at most for the next segment before it reads its messages again */
const WAIT_MS = 25;

interface Job {
  id: number;
  audioPath: string;
  options: TranscribeOptions;
}

function asError(e: unknown): DomainError {
  return e instanceof DomainError ? e : new DomainError("internal", e instanceof Error ? e.message : String(e));
}

/** Starts the speech engine for `cfg` (after "init"); returns the handler of every later message. */
export function runSpeechEngine(
  post: (m: FromEngine) => void,
  cfg: EngineConfig,
  onClosed?: () => void,
): (m: ToEngine) => void {
  let model: WhisperModel | null = null;
  const queue: Job[] = [];
  let running: { job: Job; t: Transcription; duration: number } | null = null;
  let closing = false;

  const forwardLogs = () => {
    for (const l of drainNativeLogs()) post({ type: "log", level: l.level, text: l.text });
  };
  const emit = (id: number, e: TranscribeEvent) => post({ type: "events", events: [[id, e]] });
  const fail = (id: number, e: unknown) => {
    const err = asError(e);
    emit(id, { type: "error", code: err.code, message: err.message, param: err.param });
  };
  const stats = () =>
    post({ type: "stats", stats: { slotsBusy: running ? 1 : 0, slotsTotal: 1, queued: queue.length } });

  try {
    if (cfg.niceness) lib().llmatic_thread_nice(cfg.niceness);
    model = WhisperModel.load(cfg.modelPath);
    const w = model.info;
    const info: ModelInfo = {
      id: cfg.id,
      path: cfg.modelPath,
      description: `whisper ${w.type}${w.multilingual ? "" : " (English only)"}`,
      nCtx: w.n_text_ctx,
      nCtxSlot: w.n_text_ctx,
      nCtxTrain: w.n_text_ctx,
      nEmbd: w.n_audio_state,
      nVocab: w.n_vocab,
      nParams: 0,
      sizeBytes: Bun.file(cfg.modelPath).size,
      parallel: 1,
      chatTemplate: null,
      eogTokens: [],
      bosToken: null,
      fim: false,
      rankHead: false,
      kind: "speech",
      multilingual: w.multilingual,
      createdAt: Math.floor(Date.now() / 1000),
    };
    forwardLogs();
    post({ type: "ready", info });
  } catch (e) {
    forwardLogs();
    const err = asError(e);
    post({ type: "fatal", code: err.code, message: err.message });
  }

  /** Starts the next waiting job (its audio decoded here, in the engine process). */
  function next(): void {
    if (running || closing || !model) return;
    const job = queue.shift();
    if (!job) {
      stats();
      return;
    }
    try {
      const pcm = decodeAudio(readFileSync(job.audioPath));
      const o = job.options;
      const t = Transcription.start(model, pcm, {
        language: o.language,
        prompt: o.prompt,
        translate: o.translate ?? false,
        temperature: o.temperature ?? 0,
        temperature_inc: o.temperatureInc,
        token_timestamps: o.tokenTimestamps ?? false,
        n_threads: cfg.nThreads,
      });
      running = { job, t, duration: pcm.length / SAMPLE_RATE };
      stats();
      setImmediate(poll);
    } catch (e) {
      forwardLogs();
      fail(job.id, e);
      next();
    }
  }

  function poll(): void {
    if (!running) return;
    const { job, t, duration } = running;
    // asleep in native code until there is something to read (messages, cancel included, wait at most WAIT_MS)
    t.wait(WAIT_MS);
    const r = t.poll();
    if (r.segments.length) {
      emit(job.id, {
        type: "segments",
        segments: r.segments.map((s) => ({
          // whisper.cpp ends the last segment at its 30 s window's end: not past the audio
          start: Math.min(s.t0 / 100, duration),
          end: Math.min(s.t1 / 100, duration),
          text: s.text,
          tokens: s.tokens.map((k) => ({
            id: k.id,
            text: k.text,
            p: k.p,
            ...(k.t0 === undefined ? {} : { start: k.t0 / 100, end: (k.t1 as number) / 100 }),
          })),
          avgLogprob: s.avg_logprob,
          noSpeechProb: s.no_speech_prob,
        })),
      });
    }
    if (r.state === "running") {
      setImmediate(poll);
      return;
    }
    t.dispose();
    running = null;
    forwardLogs();
    if (r.state === "done") emit(job.id, { type: "done", language: r.language ?? "", duration });
    else if (r.state === "cancelled") fail(job.id, new DomainError("cancelled", "the transcription was cancelled"));
    else fail(job.id, new DomainError("internal", r.error ?? "the transcription failed"));
    if (closing) finish();
    else next();
  }

  function finish(): void {
    if (running) return; // poll() ends it, then comes back here
    model?.dispose();
    model = null;
    post({ type: "closed" });
    onClosed?.();
  }

  const refuse = () =>
    new DomainError(
      "invalid_request",
      `${cfg.id} is a speech-to-text model (whisper): use /v1/audio/transcriptions or /v1/audio/translations`,
      "model",
    );

  return (m) => {
    switch (m.type) {
      case "init":
        return;
      case "transcribe":
        if (closing) return fail(m.id, new DomainError("engine_unavailable", "the server is shutting down"));
        queue.push({ id: m.id, audioPath: m.audioPath, options: m.options });
        next();
        stats();
        return;
      case "cancel": {
        const i = queue.findIndex((j) => j.id === m.id);
        if (i >= 0) {
          queue.splice(i, 1);
          fail(m.id, new DomainError("cancelled", "the transcription was cancelled"));
        } else if (running?.job.id === m.id) running.t.cancel();
        return;
      }
      case "shutdown":
        closing = true;
        for (const j of queue.splice(0))
          fail(j.id, new DomainError("engine_unavailable", "the server is shutting down"));
        running?.t.cancel();
        finish();
        return;
      case "generate": {
        const err = refuse();
        post({
          type: "events",
          events: [[m.id, { type: "error", code: err.code, message: err.message, param: "model" }]],
        });
        return;
      }
      default: {
        const err = refuse();
        post({ type: "failed", id: m.id, code: err.code, message: err.message, param: "model" });
      }
    }
  };
}
