// POST /v1/audio/transcriptions and /v1/audio/translations: a multipart form
// (file, model, prompt, response_format, temperature, language,
// timestamp_granularities[], stream) read with bounds, then the speech service.
import { Elysia } from "elysia";
import { invalid } from "../errors";
import { frame } from "../http/sse";
import type { Services } from "../services";
import {
  type AudioRequest,
  audioRequest,
  MAX_AUDIO_BYTES,
  speechModelId,
  transcribe,
  transcribeStream,
} from "../services/audio";
import { streamResponse, withModel } from "../services/generation";
import { boundaryOf, MultipartReader } from "../store/multipart";

const MAX_FIELD_BYTES = 8192;

/** The form's file (whole, at most MAX_AUDIO_BYTES) and its text fields. */
async function readForm(request: Request, task: AudioRequest["task"]): Promise<AudioRequest> {
  const boundary = boundaryOf(request.headers.get("content-type"));
  if (!boundary || !request.body) {
    throw invalid(
      "Send the audio as multipart/form-data with the fields 'file' and 'model'",
      null,
      "invalid_content_type",
    );
  }
  const mp = new MultipartReader(request.body, boundary);
  const fields = new Map<string, string[]>();
  let file: Uint8Array | null = null;
  for (let part = await mp.next(); part; part = await mp.next()) {
    if (part.name === "file") {
      if (file) throw invalid("Send one 'file'", "file");
      const chunks: Uint8Array[] = [];
      let n = 0;
      for await (const c of mp.body()) {
        n += c.length;
        if (n > MAX_AUDIO_BYTES)
          throw invalid(`the audio file is larger than ${MAX_AUDIO_BYTES / 1024 / 1024} MB`, "file", "file_too_large");
        chunks.push(c);
      }
      file = Buffer.concat(chunks);
    } else {
      const list = fields.get(part.name) ?? [];
      list.push(await mp.text(MAX_FIELD_BYTES, part.name));
      fields.set(part.name, list);
    }
  }
  return audioRequest(task, file, fields);
}

export const audioRoutes = (svc: Services) => {
  const app = new Elysia({ name: "routes/audio" }).use(svc);
  for (const task of ["transcribe", "translate"] as const) {
    const path = task === "transcribe" ? "/audio/transcriptions" : "/audio/translations";
    app.post(
      path,
      async ({ request, registry, config, server }) => {
        const r = await readForm(request, task);
        const ctx = { registry, request, server, config };
        return withModel(ctx, speechModelId(registry, r.model), async (engine, handOff) => {
          if (r.stream) {
            const s = await transcribeStream(engine, r, request.signal);
            const release = handOff();
            async function* sse() {
              try {
                for await (const e of s.frames) yield frame(e);
              } finally {
                release();
              }
            }
            return streamResponse(ctx, s, sse());
          }
          const out = await transcribe(engine, r, request.signal);
          if ("json" in out) return out.json;
          return new Response(out.text, { headers: { "content-type": out.contentType } });
        });
      },
      {
        // the route reads the form itself, as it streams
        parse: () => null,
        detail: {
          summary:
            task === "transcribe"
              ? "Transcribe audio (multipart: file, model, prompt, response_format, temperature, language, timestamp_granularities[], stream)"
              : "Translate audio into English text (multipart: file, model, prompt, response_format, temperature)",
          tags: ["Audio"],
        },
      },
    );
  }
  return app;
};
