#!/usr/bin/env bun
import vocab from "../native/lib/ggml-vocab-qwen2.gguf" with { type: "file" };
// Entry point of the single executable (`bun run compile` -> dist/llmatic): the
// native library and the demo model's tokenizer and template are embedded. The
// executable is also each model's engine process and each fine-tune's runner:
// the server spawns itself with LLMATIC_ENGINE_CHILD=1 / LLMATIC_FINETUNE_CHILD=1.
import lib from "../native/lib/libllmatic.so" with { type: "file" };
import template from "../native/lib/qwen2.5-instruct.jinja" with { type: "file" };
import { extractOnce, useEmbedded } from "./embedded";

useEmbedded({ lib, vocab, template });
// the engines open the library from this path (they inherit the environment)
process.env.LLMATIC_LIB ??= extractOnce(lib);
if (process.env.LLMATIC_ENGINE_CHILD === "1") await import("./engine/child");
else if (process.env.LLMATIC_FINETUNE_CHILD === "1") await import("./finetune/child");
else await import("./main");
