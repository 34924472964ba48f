// /v1/responses: the Responses API (create, streamed or not or in the
// background; retrieve, delete, cancel, input_items, input_tokens). The work is
// in services/responses.ts; conversions in responses/.
import { Elysia, t } from "elysia";
import { pathParam } from "../http/params";
import { precheck } from "../http/validate";
import { ResponseCreateRequest } from "../responses/schemas";
import type { Services } from "../services";
import { begin, streamResponse, withModel } from "../services/generation";

export const responseRoutes = (svc: Services) =>
  new Elysia({ name: "routes/responses" })
    .use(svc)
    .model({ ResponseCreateRequest })
    .post(
      "/responses",
      ({ body, registry, config, metrics, request, server, stores }) => {
        const responses = stores.responses;
        if (body.background) return responses.background(body);
        return withModel({ registry, request, server, config }, body.model, async (engine, handOff) => {
          const plan = responses.plan(body, engine);
          if (!body.stream) return responses.run(plan, engine, request.signal);
          const g = await begin(engine, [plan.request], request.signal, metrics);
          return streamResponse({ registry, request, server, config }, g, responses.stream(plan, g, handOff()));
        });
      },
      {
        body: "ResponseCreateRequest",
        transform: precheck(ResponseCreateRequest),
        detail: {
          summary:
            "Create a model response (function tools, structured output, reasoning; SSE when stream is true; stored unless store is false)",
          tags: ["Responses"],
        },
      },
    )
    .post(
      "/responses/input_tokens",
      ({ body, registry, config, request, server, stores }) =>
        withModel({ registry, request, server, config }, body.model, (engine) =>
          stores.responses.inputTokens(body, engine),
        ),
      {
        body: "ResponseCreateRequest",
        transform: precheck(ResponseCreateRequest),
        detail: { summary: "Count the input tokens a response request would use", tags: ["Responses"] },
      },
    )
    .get(
      "/responses/:response_id",
      ({ params, stores }) => stores.responses.retrieve(pathParam(params.response_id, "response_id")),
      {
        detail: { summary: "Retrieve a stored response", tags: ["Responses"] },
      },
    )
    .delete(
      "/responses/:response_id",
      ({ params, stores }) => stores.responses.delete(pathParam(params.response_id, "response_id")),
      {
        detail: { summary: "Delete a stored response", tags: ["Responses"] },
      },
    )
    .post(
      "/responses/:response_id/cancel",
      ({ params, stores }) => stores.responses.cancel(pathParam(params.response_id, "response_id")),
      { detail: { summary: "Cancel a background response", tags: ["Responses"] } },
    )
    .get(
      "/responses/:response_id/input_items",
      ({ params, query, stores }) => stores.responses.inputItems(pathParam(params.response_id, "response_id"), query),
      {
        query: t.Object({
          limit: t.Optional(t.Integer({ minimum: 1, maximum: 100 })),
          order: t.Optional(t.Union([t.Literal("asc"), t.Literal("desc")])),
          after: t.Optional(t.String({ maxLength: 256 })),
          before: t.Optional(t.String({ maxLength: 256 })),
          include: t.Optional(t.Unknown()),
        }),
        detail: { summary: "List a stored response's input items", tags: ["Responses"] },
      },
    );
