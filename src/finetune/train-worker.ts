// The fine-tune runner's training thread: it owns the native work, so the
// runner's main thread stays free to take a cancel, which it sets in shared
// memory: read between steps here, and by the training context's abort
// callback inside a step.
declare const self: Worker;

import { DomainError } from "../errors";
import { lib, setLibraryPath } from "../ffi/library";
import type { FineTuneSpec, RunnerReport } from "./protocol";
import { runFineTune } from "./train";

self.onmessage = async (ev: MessageEvent<{ spec: FineTuneSpec; cancel: SharedArrayBuffer }>) => {
  const { spec, cancel } = ev.data;
  const post = (r: RunnerReport) => self.postMessage(r);
  const flag = new Int32Array(cancel);
  try {
    if (spec.libPath) setLibraryPath(spec.libPath);
    // training yields the CPU to serving
    lib().llmatic_thread_nice(19);
    await runFineTune(spec, flag, post);
    if (flag[0] !== 0) post({ type: "cancelled" });
  } catch (e) {
    if (flag[0] !== 0) post({ type: "cancelled" });
    else post({ type: "failed", message: e instanceof DomainError || e instanceof Error ? e.message : String(e) });
  }
};
