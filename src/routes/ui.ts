// GET /: a small chat page (model picker, streamed answers, tokens/s) that uses
// the public API like any client. Embedded in the compiled executable.
import { Elysia } from "elysia";
import page from "../ui/chat.html" with { type: "file" };

// bun-types types .html imports as HTML bundles; `with { type: "file" }` makes it a path
const pagePath = page as unknown as string;

/**
 * Browsers (Accept: text/html) get the chat page; clients that probe the root
 * the way Ollama's do get Ollama's plain answer.
 */
export function rootResponse(accept: string | null): Response {
  if (accept?.includes("text/html"))
    return new Response(Bun.file(pagePath), { headers: { "content-type": "text/html; charset=utf-8" } });
  return new Response("Ollama is running", { headers: { "content-type": "text/plain; charset=utf-8" } });
}

export const uiRoutes = () =>
  new Elysia({ name: "routes/ui" })
    .get("/", ({ request }) => rootResponse(request.headers.get("accept")), { detail: { hide: true } })
    .head("/", () => new Response(null, { headers: { "content-type": "text/plain; charset=utf-8" } }), {
      detail: { hide: true },
    });
