// What /v1/models says of each model beyond OpenAI's four fields, for UIs: its
// state (loaded, unloaded, loading, failed, restarting), context length (the
// slot's when loaded, else the trained one), capabilities, file size and kind;
// and loading and unloading on request.
import { capabilitiesOf, describeModel, type ModelFacts } from "../models/describe";
import { modelObject } from "../openai/responses";
import type { ModelEntry, ModelRegistry } from "../registry";

/** A model's facts: from its file when it is on disk (hub models before their first load have none). */
export function factsOf(e: ModelEntry): ModelFacts | null {
  const path = e.engine?.info.path ?? (e.source.kind === "path" ? e.source.path : null);
  return path ? describeModel(path) : null;
}

/** Capabilities as the model really has them: the loaded engine's, else its file's. */
export function capabilitiesOfEntry(e: ModelEntry, f: ModelFacts | null) {
  const info = e.engine?.info;
  if (!info) return f?.capabilities ?? ["completion"];
  if (info.kind === "speech") return f?.capabilities ?? ["transcription"];
  const pooling = f?.capabilities.includes("embedding") ?? false;
  return capabilitiesOf(info.chatTemplate, {
    fim: info.fim,
    pooling,
    rankHead: info.rankHead,
    vision: info.vision ?? false,
  });
}

export function modelCard(registry: ModelRegistry, e: ModelEntry) {
  const f = factsOf(e);
  const info = e.engine?.info;
  return {
    ...modelObject(registry.info(e)),
    state: e.state === "ready" ? "loaded" : e.state,
    context_length: info?.nCtxSlot ?? f?.contextLength ?? null,
    capabilities: capabilitiesOfEntry(e, f),
    size: f?.sizeBytes ?? null,
    kind: info?.kind ?? (f?.architecture === "whisper" ? "speech" : "text"),
    architecture: f?.architecture ?? null,
    quantization: f?.quantization ?? null,
    source: e.fineTuned ? "fine-tune" : e.downloaded ? "pulled" : e.source.kind === "hf" ? "hub" : "file",
  };
}
