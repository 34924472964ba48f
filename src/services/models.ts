// What /v1/models says of each model beyond OpenAI's four fields, for UIs: its
// state (loaded, unloaded, loading, failed, restarting), context length (the
// slot's when loaded, else the trained one), capabilities, file size and kind;
// and loading and unloading on request.
import { modelObject } from "../openai/responses";
import type { ModelEntry, ModelRegistry } from "../registry";
import { capabilitiesOfEntry, factsOf } from "./ollama";

export function modelCard(registry: ModelRegistry, e: ModelEntry) {
  const f = factsOf(e);
  const info = e.engine?.info;
  return {
    ...modelObject(registry.info(e)),
    state: e.state === "ready" ? "loaded" : e.state,
    context_length: info?.nCtxSlot ?? f?.contextLength ?? null,
    capabilities: capabilitiesOfEntry(e, f),
    size: f?.sizeBytes ?? null,
    architecture: f?.architecture ?? null,
    quantization: f?.quantization ?? null,
    source: e.fineTuned ? "fine-tune" : e.downloaded ? "pulled" : e.source.kind === "hf" ? "hub" : "file",
  };
}
