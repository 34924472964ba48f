// Messages between an engine's decode thread (runtime.ts) and its preparation
// thread (prep.ts), both in the engine's process.
import type { ErrorCode } from "../errors";
import type { NativeLogLine } from "../ffi/library";
import type { PreparedWire } from "./prepare";
import type { EngineConfig, GenerateRequest } from "./types";

export type ToPrep =
  | { type: "load"; config: EngineConfig; progress: SharedArrayBuffer }
  | { type: "prepare"; id: number; request: GenerateRequest; nCtxSlot: number }
  | { type: "embed"; id: number; inputs: (string | number[])[]; nCtx: number; rankQuery?: string }
  | { type: "tokenize"; id: number; text: string; addSpecial: boolean; parseSpecial: boolean }
  | { type: "detokenize"; id: number; tokens: number[] }
  | { type: "count"; id: number; request: GenerateRequest; nCtxSlot: number }
  | { type: "shutdown" };

export type FromPrep =
  /** the model's (and the projector's) handle: the decode thread owns them from now on */
  | { type: "loaded"; model: number; vision: number | null }
  | { type: "fatal"; code: ErrorCode; message: string }
  | { type: "logs"; lines: NativeLogLine[] }
  | { type: "prepared"; id: number; prepared: PreparedWire }
  | { type: "embedded"; id: number; inputs: Int32Array[] }
  | { type: "result"; id: number; value: unknown }
  | { type: "failed"; id: number; code: ErrorCode; message: string; param: string | null }
  | { type: "closed" };
