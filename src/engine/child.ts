// An engine in its own process (the default): the server spawns this file (or
// the executable itself, with LLMATIC_ENGINE_CHILD=1) and talks to it over Bun's
// IPC channel. The process dies with its parent, is the kernel's first choice
// when memory runs out, and exits when the server goes away or after shutdown.
import { lib } from "../ffi/library";
import { runEngine } from "./runtime";
import type { FromEngine, ToEngine } from "./types";

const send = process.send?.bind(process);
if (!send) {
  process.stderr.write("llmatic: the engine process must be started by the server (no IPC channel)\n");
  process.exit(2);
}

process.on("disconnect", () => process.exit(0));

runEngine(
  {
    post: (m: FromEngine) => {
      send(m);
    },
    listen: (fn) => {
      process.on("message", (m) => fn(m as ToEngine));
    },
  },
  {
    onInit: () => {
      lib().llmatic_engine_process_setup();
    },
    onClosed: () => {
      // let the last messages leave before the channel closes
      setTimeout(() => process.exit(0), 10);
    },
  },
);
