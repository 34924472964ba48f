// An engine in a Worker thread of the server (--isolation thread): the same
// runtime as a child process, over postMessage. A native crash here ends the
// whole server; the default runs each engine in its own process (child.ts).
declare const self: Worker;

import { runEngine } from "./runtime";
import type { FromEngine, ToEngine } from "./types";

runEngine({
  post: (m: FromEngine) => self.postMessage(m),
  listen: (fn) => {
    self.onmessage = (ev: MessageEvent<ToEngine>) => fn(ev.data);
  },
});
