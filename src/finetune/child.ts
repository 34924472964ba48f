// A fine-tune runner: its own process (llama.cpp's training code calls abort()
// on what it does not support, so a job must never run inside the server). The
// server spawns it (bun src/finetune/child.ts, or the executable itself with
// LLMATIC_FINETUNE_CHILD=1) and talks JSON over IPC. It dies with the server.
import { lib } from "../ffi/library";
import type { RunnerReport, ToRunner } from "./protocol";

const send = process.send?.bind(process);
if (!send) {
  process.stderr.write("llmatic: the fine-tune runner must be started by the server (no IPC channel)\n");
  process.exit(2);
}
process.on("disconnect", () => process.exit(0));

const cancel = new SharedArrayBuffer(4);
const flag = new Int32Array(cancel);
let worker: Worker | null = null;

const finish = (r: RunnerReport) => {
  send(r);
  // let the message leave before the channel closes
  setTimeout(() => process.exit(0), 50);
};

process.on("message", (raw) => {
  const m = raw as ToRunner;
  if (m.type === "cancel") {
    Atomics.store(flag, 0, 1);
    return;
  }
  if (m.type === "start" && !worker) {
    if (m.spec.libPath) process.env.LLMATIC_LIB = m.spec.libPath;
    lib().llmatic_engine_process_setup();
    worker = new Worker(new URL("./train-worker.ts", import.meta.url).href);
    worker.onmessage = (ev: MessageEvent<RunnerReport>) => {
      const r = ev.data;
      if (r.type === "done" || r.type === "failed" || r.type === "cancelled") finish(r);
      else send(r);
    };
    worker.onerror = (ev) => finish({ type: "failed", message: `the training thread failed: ${ev.message}` });
    worker.postMessage({ spec: m.spec, cancel });
  }
});
