// One fine-tune, start to end, in the runner (a child process of the server;
// this code runs in its worker thread): the base model as an f32 working copy,
// the examples as windows, epochs of one optimizer step per window with the
// metrics of each, validation per epoch, then the result as a copy of the
// working GGUF with the trained tensors' bytes written over (every key of the
// base survives: chat template, context length, tokenizer), served as f32 for
// small models or converted to Q8_0.
import { closeSync, copyFileSync, existsSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { DomainError } from "../errors";
import { Model } from "../ffi/model";
import { quantizeModel, Trainer } from "../ffi/trainer";
import { GgmlType, readGguf } from "../gguf/gguf";
import {
  type Example,
  measure,
  pack,
  shuffled,
  type TokenizedExample,
  tokenizeExample,
  type Window,
  windowFor,
} from "./data";
import type { FineTuneSpec, RunnerReport } from "./protocol";

/** Architectures whose every op has a backward pass in llama.cpp v0.5.0 (dense, RMSNorm, SwiGLU). */
export const TRAINABLE_ARCHITECTURES = ["llama", "qwen2", "qwen3", "mistral", "granite"] as const;

/** Why a model cannot be trained, or null. */
export function untrainable(path: string): string | null {
  const g = readGguf(path, { arrays: false });
  const arch = String(g.metadata.get("general.architecture")?.value ?? "unknown");
  if (!(TRAINABLE_ARCHITECTURES as readonly string[]).includes(arch)) {
    return `models of architecture '${arch}' cannot be fine-tuned here (llama.cpp v0.5.0 has no backward pass for some of their ops); trainable: ${TRAINABLE_ARCHITECTURES.join(", ")}`;
  }
  const experts = Number(g.metadata.get(`${arch}.expert_count`)?.value ?? 0);
  if (experts > 0) return "mixture-of-experts models cannot be fine-tuned here (MUL_MAT_ID has no backward pass)";
  return null;
}

/** f32 bytes of a model's 2-D weights above this are served as Q8_0 (the f32 copy would be too large to serve). */
const SERVE_F32_BELOW = 256 * 1024 * 1024;

function readExamples(path: string): Example[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Example);
}

/** A window as rows of the results file need it. */
function windowMetrics(trainer: Trainer, w: Window, train: boolean) {
  const r = trainer.step(w.tokens, w.labels, w.weights, train);
  return { r, m: measure(w, r.nll, r.pred) };
}

export async function runFineTune(
  spec: FineTuneSpec,
  cancel: Int32Array,
  report: (r: RunnerReport) => void,
): Promise<void> {
  const event = (message: string, level: "info" | "warn" = "info") => report({ type: "event", level, message });
  const cancelled = () => cancel[0] !== 0;
  const why = untrainable(spec.baseModelPath);
  if (why) throw new DomainError("invalid_request", why);

  // the working copy: all 2-D weights in f32 (only f32 tensors train); the embedding keeps its type
  const base = readGguf(spec.baseModelPath, { arrays: false });
  const embd = base.tensors.find((t) => t.name === "token_embd.weight");
  const notF32 = base.tensors.filter(
    (t) => t.name !== "token_embd.weight" && t.dims.length >= 2 && t.type !== GgmlType.F32,
  );
  let working = spec.baseModelPath;
  if (notF32.length > 0) {
    event(`Converting ${notF32.length} tensors of the base model to f32 for training.`);
    working = join(spec.workDir, "working-f32.gguf");
    quantizeModel(spec.baseModelPath, working, 0, embd?.type ?? -1, spec.threads);
  }
  const model = Model.load(working, { useMmap: false, repack: false });
  try {
    const eos = model.eogTokens()[0] ?? model.startToken;
    const tok = (text: string, addSpecial: boolean) => model.tokenize(text, addSpecial, false);
    const train: TokenizedExample[] = readExamples(spec.trainingFile).map((e) => tokenizeExample(e, tok, eos));
    const valid: TokenizedExample[] = spec.validationFile
      ? readExamples(spec.validationFile).map((e) => tokenizeExample(e, tok, eos))
      : [];
    const all = [...train, ...valid];
    const longest = Math.max(...all.map((e) => e.ids.length));
    if (longest > spec.maxWindow) {
      throw new DomainError(
        "invalid_request",
        `an example is ${longest} tokens long; the longest that can be trained here is ${spec.maxWindow}`,
      );
    }
    const W = windowFor(all);
    const trainer = Trainer.create(model, W, Math.min(256, W), spec.threads, cancel);
    try {
      const h = spec.hyperparams;
      event(
        `Training ${trainer.trainable.toLocaleString("en")} parameters of ${model.nParams.toLocaleString("en")}, in windows of ${trainer.window} tokens.`,
      );
      event(
        "In llama.cpp v0.5.0 the token embedding (and so a tied output head) never trains, and attn_k/attn_v get no gradient: attention reads K and V from the cache, which has no backward pass.",
        "warn",
      );
      const started = performance.now();
      let step = 0;
      let elapsedTokens = 0;
      let elapsedExamples = 0;
      // the per-position weights reach the gradient through the loss hook; say so if it never ran
      let hookChecked = false;
      for (let epoch = 1; epoch <= h.n_epochs; epoch++) {
        const windows = pack(
          shuffled(train, spec.seed + epoch),
          trainer.window,
          h.batch_size,
          eos,
          h.prompt_loss_weight,
        );
        for (const w of windows) {
          if (cancelled()) return;
          const lr = h.learning_rate;
          trainer.setAdamW(lr);
          const { r, m } = windowMetrics(trainer, w, true);
          if (r.cancelled || cancelled()) return;
          if (!hookChecked) {
            hookChecked = true;
            if (trainer.hookCalls === 0) {
              event("The per-position loss hook did not run: prompt_loss_weight was not applied (1 was used).", "warn");
            }
          }
          step++;
          elapsedTokens += w.spans.reduce((a, s) => a + s.len, 0);
          elapsedExamples += w.spans.length;
          report({
            type: "row",
            row: {
              step,
              elapsed_tokens: elapsedTokens,
              elapsed_examples: elapsedExamples,
              training_loss: m.loss,
              training_sequence_accuracy: m.sequencesCorrect / Math.max(1, m.sequences),
              training_token_accuracy: m.tokenCorrect / Math.max(1, m.tokenTotal),
              seconds: (performance.now() - started) / 1000,
            },
          });
          await new Promise((res) => setImmediate(res));
        }
        // validation: forward only
        let summary = "";
        if (valid.length) {
          let loss = 0;
          let n = 0;
          let tc = 0;
          let tt = 0;
          let sc = 0;
          let ss = 0;
          const classes: { predicted: number; actual: number }[] = [];
          for (const w of pack(valid, trainer.window, h.batch_size, eos, h.prompt_loss_weight)) {
            if (cancelled()) return;
            const { r, m } = windowMetrics(trainer, w, false);
            if (r.cancelled) return;
            loss += m.loss * w.spans.length;
            n += w.spans.length;
            tc += m.tokenCorrect;
            tt += m.tokenTotal;
            sc += m.sequencesCorrect;
            ss += m.sequences;
            for (const s of w.spans) {
              const p = s.start + s.promptLen - 1; // predicts the first completion token
              classes.push({ predicted: r.pred[p] as number, actual: w.labels[p] as number });
            }
          }
          const row: Record<string, number> = {
            step,
            elapsed_tokens: elapsedTokens,
            elapsed_examples: elapsedExamples,
            validation_loss: loss / Math.max(1, n),
            validation_sequence_accuracy: sc / Math.max(1, ss),
            validation_token_accuracy: tc / Math.max(1, tt),
          };
          if (h.compute_classification_metrics) Object.assign(row, classificationMetrics(classes, h, tok));
          report({ type: "row", row });
          summary = `: validation loss ${row.validation_loss?.toFixed(4)}, token accuracy ${row.validation_token_accuracy?.toFixed(3)}`;
        }
        event(`Completed epoch ${epoch}/${h.n_epochs}${summary}.`);
      }
      if (cancelled()) return;

      // the result: the working copy with the trained tensors' bytes written over
      const tensors = trainer.tensors();
      const patched = join(spec.workDir, "patched.gguf");
      copyFileSync(working, patched);
      const g = readGguf(patched, { arrays: false });
      const fd = openSync(patched, "r+");
      try {
        for (const t of tensors) {
          const info = g.tensors.find((x) => x.name === t.name);
          if (!info || info.type !== GgmlType.F32)
            throw new DomainError("internal", `tensor ${t.name} is not f32 in the working copy`);
          writeSync(fd, t.bytes, 0, t.bytes.length, g.dataOffset + info.offset);
        }
      } finally {
        closeSync(fd);
      }
      const f32Bytes = g.tensors
        .filter((t) => t.name !== "token_embd.weight" && t.dims.length >= 2)
        .reduce((a, t) => a + t.dims.reduce((x, y) => x * y, 1) * 4, 0);
      if (f32Bytes > SERVE_F32_BELOW) {
        quantizeModel(patched, spec.outputPath, 7, embd?.type ?? -1, spec.threads);
        rmSync(patched, { force: true });
        event("The fine-tuned model is served as Q8_0.");
      } else {
        renameSync(patched, spec.outputPath);
        event("The fine-tuned model is served as f32 (it is small).");
      }
      report({ type: "done", modelPath: spec.outputPath, steps: step, seconds: (performance.now() - started) / 1000 });
    } finally {
      trainer.dispose();
    }
  } finally {
    model.dispose();
    if (working !== spec.baseModelPath && existsSync(working)) rmSync(working, { force: true });
  }
}

/** Accuracy (and precision/recall/F-beta for a positive class) of the first completion token's class. */
function classificationMetrics(
  classes: { predicted: number; actual: number }[],
  h: FineTuneSpec["hyperparams"],
  tok: (text: string, addSpecial: boolean) => ArrayLike<number>,
): Record<string, number> {
  const out: Record<string, number> = {
    "classification/accuracy": classes.filter((c) => c.predicted === c.actual).length / Math.max(1, classes.length),
  };
  if (h.classification_positive_class !== null) {
    const pos = tok(h.classification_positive_class, false)[0];
    const tp = classes.filter((c) => c.predicted === pos && c.actual === pos).length;
    const fp = classes.filter((c) => c.predicted === pos && c.actual !== pos).length;
    const fn = classes.filter((c) => c.predicted !== pos && c.actual === pos).length;
    const precision = tp / Math.max(1, tp + fp);
    const recall = tp / Math.max(1, tp + fn);
    out["classification/precision"] = precision;
    out["classification/recall"] = recall;
    for (const beta of h.classification_betas ?? [1]) {
      const b2 = beta * beta;
      out[`classification/f${beta.toFixed(1)}`] =
        ((1 + b2) * precision * recall) / Math.max(1e-12, b2 * precision + recall);
    }
  }
  return out;
}
