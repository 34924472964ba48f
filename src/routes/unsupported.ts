// The contract's paths llmatic does not serve: each answers 501 with an OpenAI
// error naming the endpoint (and x-should-retry: false, so SDKs do not retry).
import { Elysia } from "elysia";
import { ApiError } from "../http/errors";

const UNSUPPORTED: [method: "get" | "post" | "delete", path: string][] = [
  ["post", "/edits"],
  ["post", "/images/generations"],
  ["post", "/images/edits"],
  ["post", "/images/variations"],
  ["post", "/audio/transcriptions"],
  ["post", "/audio/translations"],
  ["post", "/engines/:engine_id/search"],
  ["get", "/files"],
  ["post", "/files"],
  ["get", "/files/:file_id"],
  ["delete", "/files/:file_id"],
  ["get", "/files/:file_id/content"],
  ["post", "/answers"],
  ["post", "/classifications"],
  ["post", "/fine-tunes"],
  ["get", "/fine-tunes"],
  ["get", "/fine-tunes/:fine_tune_id"],
  ["post", "/fine-tunes/:fine_tune_id/cancel"],
  ["get", "/fine-tunes/:fine_tune_id/events"],
  ["post", "/moderations"],
];

export const unsupportedRoutes = () => {
  const app = new Elysia({ name: "routes/unsupported" });
  for (const [method, path] of UNSUPPORTED) {
    const name = `${method.toUpperCase()} /v1${path.replace(/:(\w+)/g, "{$1}")}`;
    app.route(
      method.toUpperCase(),
      path,
      () => {
        throw ApiError.notImplemented(name);
      },
      // multipart uploads and JSON alike get the same answer (the body is not read)
      { parse: () => null, detail: { summary: `${name} (not implemented: 501)`, tags: ["Not implemented"] } },
    );
  }
  return app;
};
