// /v1/messages: Anthropic's Messages API (Claude Code, the Anthropic SDKs),
// streamed or not, and /v1/messages/count_tokens. Errors on these routes are in
// Anthropic's shape (the HTTP layer picks the dialect by path); x-api-key is
// accepted as the API key and anthropic-version is read past.
import { Elysia } from "elysia";
import { CountTokensRequest, MessagesRequest } from "../anthropic/schemas";
import { precheck } from "../http/validate";
import type { Services } from "../services";
import { begin, streamResponse, withModel } from "../services/generation";
import { anthropicModel, countMessageTokens, createMessage, messageStream, messagesPlan } from "../services/messages";

export const messageRoutes = (svc: Services) =>
  new Elysia({ name: "routes/messages" })
    .use(svc)
    .model({ MessagesRequest, CountTokensRequest })
    .post(
      "/messages",
      ({ body, registry, config, metrics, request, server }) => {
        const model = anthropicModel(registry, body.model, config.defaultModel);
        return withModel({ registry, request, server, config }, model, async (engine, handOff) => {
          if (!body.stream) {
            return createMessage(engine, body, { defaults: config.sampling, signal: request.signal, metrics });
          }
          const plan = messagesPlan(body, config.sampling, engine);
          const g = await begin(engine, [plan.request], request.signal, metrics);
          return streamResponse({ registry, request, server, config }, g, messageStream(plan, g, handOff()));
        });
      },
      {
        body: "MessagesRequest",
        transform: precheck(MessagesRequest),
        detail: {
          summary: "Create a message, Anthropic's way (tools, thinking; SSE when stream is true)",
          tags: ["Anthropic"],
        },
      },
    )
    .post(
      "/messages/count_tokens",
      ({ body, registry, config, request, server }) =>
        withModel(
          { registry, request, server, config },
          anthropicModel(registry, body.model, config.defaultModel),
          (engine) => countMessageTokens(engine, body, config.sampling),
        ),
      {
        body: "CountTokensRequest",
        transform: precheck(CountTokensRequest),
        detail: { summary: "Count the input tokens of a message request", tags: ["Anthropic"] },
      },
    );
