// The API reference at /docs (Swagger UI through @elysiajs/openapi) and its JSON
// at /docs/json. The UI's assets come from the swagger-ui-dist npm package and
// are served by us: the page works offline.
import { openapi } from "@elysiajs/openapi";
import { Elysia } from "elysia";
import cssPath from "swagger-ui-dist/swagger-ui.css" with { type: "file" };
import bundlePath from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "file" };

export const docs = (version: string) =>
  new Elysia({ name: "docs" })
    .get("/docs/assets/swagger-ui-bundle.js", () => new Response(Bun.file(bundlePath)), { detail: { hide: true } })
    .get("/docs/assets/swagger-ui.css", () => new Response(Bun.file(cssPath)), { detail: { hide: true } })
    .use(
      openapi({
        path: "/docs",
        provider: "swagger-ui",
        swagger: {
          cdn: "/docs/assets/swagger-ui-bundle.js",
          theme: "/docs/assets/swagger-ui.css",
        } as never,
        documentation: {
          info: {
            title: "llmatic",
            version,
            description:
              "OpenAI-compatible API over local GGUF models (llama.cpp). Point any OpenAI client at /v1. " +
              "Contract: OpenAI API 1.2.0 plus what today's clients send.",
          },
          components: {
            securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
          },
          security: [{ bearer: [] }],
        },
      }),
    );
