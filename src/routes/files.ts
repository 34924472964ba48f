// /v1/files: multipart uploads streamed to disk (--max-upload-mb), validated per
// purpose, listed, retrieved, downloaded and deleted (not while a job uses them).
import { Elysia, t } from "elysia";
import { invalid } from "../errors";
import { pathParam } from "../http/params";
import type { Services } from "../services";
import { boundaryOf, MultipartReader } from "../store/multipart";

export const fileRoutes = (svc: Services) =>
  new Elysia({ name: "routes/files" })
    .use(svc)
    .post(
      "/files",
      async ({ request, stores, config }) => {
        const boundary = boundaryOf(request.headers.get("content-type"));
        if (!boundary || !request.body) {
          throw invalid(
            "Upload a file as multipart/form-data with the fields 'file' and 'purpose'",
            null,
            "invalid_content_type",
          );
        }
        const files = stores.files;
        const mp = new MultipartReader(request.body, boundary);
        let purpose: string | null = null;
        let upload: Awaited<ReturnType<typeof files.receive>> | null = null;
        try {
          for (let part = await mp.next(); part; part = await mp.next()) {
            if (part.name === "purpose") purpose = (await mp.text(64, "purpose")).trim();
            else if (part.name === "file") {
              if (upload) throw invalid("Send one 'file' per upload", "file");
              upload = await files.receive(mp.body(), part.filename, config.maxUploadBytes);
            }
            // other fields (expires_after, ...) are read past
          }
          if (!upload) throw invalid("Missing required parameter: 'file'.", "file", "missing_required_parameter");
          if (purpose === null)
            throw invalid("Missing required parameter: 'purpose'.", "purpose", "missing_required_parameter");
          const u = upload;
          upload = null;
          return await files.commit(u, purpose);
        } finally {
          if (upload) files.discard(upload);
        }
      },
      {
        // the route reads the body itself, as it streams
        parse: () => null,
        detail: { summary: "Upload a file (multipart: file, purpose)", tags: ["Files"] },
      },
    )
    .get(
      "/files",
      ({ stores, query }) => {
        const all = stores.files.list(query.purpose ?? undefined);
        const ordered = query.order === "desc" ? all.reverse() : all;
        const start = query.after ? ordered.findIndex((f) => f.id === query.after) + 1 : 0;
        const limit = query.limit ?? 10_000;
        const data = ordered.slice(start, start + limit);
        return {
          object: "list" as const,
          data,
          first_id: data[0]?.id ?? null,
          last_id: data.at(-1)?.id ?? null,
          has_more: start + data.length < ordered.length,
        };
      },
      {
        query: t.Object({
          purpose: t.Optional(t.String()),
          limit: t.Optional(t.Integer({ minimum: 1, maximum: 10_000 })),
          order: t.Optional(t.Union([t.Literal("asc"), t.Literal("desc")])),
          after: t.Optional(t.String()),
        }),
        detail: { summary: "List files", tags: ["Files"] },
      },
    )
    .get("/files/:file_id", ({ stores, params }) => stores.files.get(pathParam(params.file_id, "file_id")), {
      detail: { summary: "Retrieve a file", tags: ["Files"] },
    })
    .delete("/files/:file_id", ({ stores, params }) => stores.files.delete(pathParam(params.file_id, "file_id")), {
      detail: { summary: "Delete a file (not while a job uses it: 409)", tags: ["Files"] },
    })
    .get(
      "/files/:file_id/content",
      ({ stores, params }) => {
        const f = stores.files.get(pathParam(params.file_id, "file_id"));
        return new Response(Bun.file(stores.files.path(f.id)), {
          headers: {
            "content-type": "application/octet-stream",
            "content-disposition": `attachment; filename="${encodeURIComponent(f.filename)}"`,
          },
        });
      },
      { detail: { summary: "Download a file's bytes", tags: ["Files"] } },
    );
