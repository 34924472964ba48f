// The contract's paths llmatic does not serve: each answers 501 with an OpenAI
// error naming the endpoint (and x-should-retry: false, so SDKs do not retry).
import { Elysia } from "elysia";
import { ApiError } from "../http/errors";

const IMAGES =
  "generating images needs a diffusion engine, and no npm package carries stable-diffusion.cpp's source to build one from";

const UNSUPPORTED: [method: "get" | "post" | "delete", path: string, why: string][] = [
  ["post", "/images/generations", IMAGES],
  ["post", "/images/edits", IMAGES],
  ["post", "/images/variations", IMAGES],
];

export const unsupportedRoutes = () => {
  const app = new Elysia({ name: "routes/unsupported" });
  for (const [method, path, why] of UNSUPPORTED) {
    const name = `${method.toUpperCase()} /v1${path.replace(/:(\w+)/g, "{$1}")}`;
    app.route(
      method.toUpperCase(),
      path,
      () => {
        throw ApiError.notImplemented(name, why);
      },
      // multipart uploads and JSON alike get the same answer (the body is not read)
      { parse: () => null, detail: { summary: `${name} (not implemented: 501)`, tags: ["Not implemented"] } },
    );
  }
  return app;
};
