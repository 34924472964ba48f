// The engine's preparation thread: loads the model (so the engine's main thread
// can report progress meanwhile), then turns requests into prepared jobs:
// templating, tokenizing, grammar parsing and sampler set-up happen here,
// beside the decode loop, never inside one of its steps. Also answers
// tokenize/detokenize and tokenizes embedding inputs. Native objects it makes
// (the model, samplers, parsers) are handed to the decode thread by handle.
declare const self: Worker;

import { DomainError } from "../errors";
import { ChatTemplates } from "../ffi/chat";
import { drainNativeLogs, LogLevel, lib, setLibraryPath } from "../ffi/library";
import { Model } from "../ffi/model";
import { Vision } from "../ffi/vision";
import { chooseKernels } from "./kernels";
import type { FromPrep, ToPrep } from "./prep-protocol";
import {
  countPrompt,
  EmbeddingCache,
  prepare,
  prepareEmbeddings,
  prepareRankPairs,
  toWire,
  type VisionPrep,
} from "./prepare";

let model: Model | null = null;
let templates: ChatTemplates | null = null;
let vision: VisionPrep | null = null;

/** Image embeddings kept for repeated images (a conversation sends its images again every turn). */
const EMBEDDING_CACHE_BYTES = 64 * 1024 * 1024;
const MAX_IMAGE_PIXELS = 50_000_000;

function post(m: FromPrep): void {
  self.postMessage(m);
}

function asEngineError(e: unknown): DomainError {
  if (e instanceof DomainError) return e;
  return new DomainError("internal", e instanceof Error ? e.message : String(e));
}

function loaded(): Model {
  if (!model) throw new DomainError("engine_unavailable", "the model is not loaded");
  return model;
}

self.onmessage = (ev: MessageEvent<ToPrep>) => {
  const m = ev.data;
  try {
    switch (m.type) {
      case "load": {
        const cfg = m.config;
        if (cfg.libPath) setLibraryPath(cfg.libPath);
        if (cfg.niceness) lib().llmatic_thread_nice(cfg.niceness);
        try {
          const kernels = chooseKernels(cfg.modelPath, cfg.repack ?? true, cfg.qgemmMaxBatch);
          post({
            type: "logs",
            lines: [
              { level: LogLevel.INFO, text: `weight repacking ${kernels.repack ? "on" : "off"}: ${kernels.reason}` },
            ],
          });
          model = Model.load(cfg.modelPath, {
            nGpuLayers: cfg.nGpuLayers ?? 0,
            useMmap: cfg.useMmap ?? true,
            repack: kernels.repack,
            progress: new Float32Array(m.progress),
            onLog: (lines) => post({ type: "logs", lines }),
          });
          if (!model.hasDecoder) {
            throw new DomainError("invalid_model", `${cfg.modelPath} has no decoder: it cannot generate text`);
          }
          templates = ChatTemplates.create(model, cfg.chatTemplate);
          if (cfg.mmprojPath) {
            vision = {
              vision: Vision.load(cfg.mmprojPath, model, cfg.nThreadsBatch ?? cfg.nThreads),
              maxPixels: cfg.maxImagePixels ?? MAX_IMAGE_PIXELS,
              cache: new EmbeddingCache(EMBEDDING_CACHE_BYTES),
            };
          }
          // warm the vocabulary tables the first requests need
          void model.vocabInfo;
          post({
            type: "loaded",
            model: model.handle as unknown as number,
            vision: vision ? (vision.vision.handle as unknown as number) : null,
          });
        } catch (e) {
          vision?.vision.dispose();
          templates?.dispose();
          model?.dispose();
          vision = null;
          templates = null;
          model = null;
          const err = asEngineError(e);
          post({ type: "logs", lines: drainNativeLogs() });
          post({ type: "fatal", code: err.code, message: err.message });
        }
        return;
      }
      case "prepare":
        post({
          type: "prepared",
          id: m.id,
          prepared: toWire(prepare(loaded(), templates, m.request, m.nCtxSlot, vision)),
        });
        return;
      case "embed":
        post({
          type: "embedded",
          id: m.id,
          inputs:
            m.rankQuery === undefined
              ? prepareEmbeddings(loaded(), m.inputs, m.nCtx)
              : prepareRankPairs(loaded(), m.rankQuery, m.inputs as string[], m.nCtx),
        });
        return;
      case "tokenize":
        post({ type: "result", id: m.id, value: [...loaded().tokenize(m.text, m.addSpecial, m.parseSpecial)] });
        return;
      case "detokenize":
        post({ type: "result", id: m.id, value: loaded().detokenize(m.tokens) });
        return;
      case "count":
        post({ type: "result", id: m.id, value: countPrompt(loaded(), templates, m.request, m.nCtxSlot, vision) });
        return;
      case "shutdown":
        templates?.dispose();
        templates = null;
        // the decode thread owns the model and the projector and frees them after this thread is done
        vision?.vision.release();
        vision = null;
        model?.release();
        model = null;
        post({ type: "closed" });
        return;
    }
  } catch (e) {
    const err = asEngineError(e);
    if ("id" in m) post({ type: "failed", id: m.id, code: err.code, message: err.message, param: err.param });
  }
};
