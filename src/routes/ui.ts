// GET /: a small chat page (model picker, streamed answers, tokens/s) that uses
// the public API like any client. Embedded in the compiled executable.
import { Elysia } from "elysia";
import page from "../ui/chat.html" with { type: "file" };

// bun-types types .html imports as HTML bundles; `with { type: "file" }` makes it a path
const pagePath = page as unknown as string;

export const uiRoutes = () =>
  new Elysia({ name: "routes/ui" }).get(
    "/",
    () => new Response(Bun.file(pagePath), { headers: { "content-type": "text/html; charset=utf-8" } }),
    { detail: { hide: true } },
  );
