// The legacy endpoints of the 1.2.0 contract on local models: edits, search,
// answers, classifications, moderations (services/legacy.ts does the work).
// OpenAI's engine names (ada, davinci, text-davinci-003, ...) stand for
// --default-model; responses name the model that really ran.
import { Elysia } from "elysia";
import type { ServerConfig } from "../config";
import { pathParam } from "../http/params";
import { precheck } from "../http/validate";
import {
  AnswerRequest,
  ClassificationRequest,
  EditRequest,
  legacyModels,
  ModerationRequest,
  SearchRequest,
} from "../openai/legacy-schemas";
import type { Services } from "../services";
import { type RequestContext, withModel } from "../services/generation";
import {
  answers,
  classifications,
  edits,
  type LegacyModels,
  legacyModel,
  moderationModel,
  moderations,
  search,
} from "../services/legacy";

/**
 * Answers and classifications hold two models for the request: the one that
 * answers, and the one that searches (search_model, the same by default).
 */
function withSearch<T>(
  ctx: RequestContext & { config: Pick<ServerConfig, "defaultModel"> },
  body: { model?: string | null; search_model?: string | null },
  run: (models: LegacyModels) => Promise<T>,
): Promise<T> {
  const model = legacyModel(ctx.registry, body.model, ctx.config.defaultModel);
  const searchModel = legacyModel(ctx.registry, body.search_model, model);
  return withModel(ctx, model, (engine) =>
    withModel(ctx, searchModel, (searchEngine) => run({ engine, searchEngine })),
  );
}

export const legacyRoutes = (svc: Services) =>
  new Elysia({ name: "routes/legacy" })
    .use(svc)
    .use(legacyModels)
    .post(
      "/edits",
      ({ body, registry, config, metrics, request, server }) =>
        withModel(
          { registry, request, server, config },
          legacyModel(registry, body.model, config.defaultModel),
          (engine) => edits(engine, body, { defaults: config.sampling, signal: request.signal, metrics }),
        ),
      {
        body: "EditRequest",
        transform: precheck(EditRequest),
        detail: { summary: "Edit a text by an instruction (the model's chat template)", tags: ["Edits"] },
      },
    )
    .post(
      "/engines/:engine_id/search",
      ({ body, params, registry, config, metrics, request, server, stores }) =>
        withModel(
          { registry, request, server, config },
          legacyModel(registry, pathParam(params.engine_id, "engine_id"), config.defaultModel),
          (engine) =>
            search(engine, body, () => stores.files, { defaults: config.sampling, signal: request.signal, metrics }),
        ),
      {
        body: "SearchRequest",
        transform: precheck(SearchRequest),
        detail: {
          summary: "Rank documents by relevance to a query (OpenAI's log-probability score)",
          tags: ["Search"],
        },
      },
    )
    .post(
      "/answers",
      ({ body, registry, config, metrics, request, server, stores }) =>
        withSearch({ registry, request, server, config }, body, (models) =>
          answers(models, body, () => stores.files, { defaults: config.sampling, signal: request.signal, metrics }),
        ),
      {
        body: "AnswerRequest",
        transform: precheck(AnswerRequest),
        detail: { summary: "Answer a question from documents and examples", tags: ["Answers"] },
      },
    )
    .post(
      "/classifications",
      ({ body, registry, config, metrics, request, server, stores }) =>
        withSearch({ registry, request, server, config }, body, (models) =>
          classifications(models, body, () => stores.files, {
            defaults: config.sampling,
            signal: request.signal,
            metrics,
          }),
        ),
      {
        body: "ClassificationRequest",
        transform: precheck(ClassificationRequest),
        detail: {
          summary: "Classify a text by labelled examples (the label is always one of labels)",
          tags: ["Classifications"],
        },
      },
    )
    .post(
      "/moderations",
      ({ body, registry, config, metrics, request, server }) =>
        withModel(
          { registry, request, server, config },
          moderationModel(registry, body.model, config.moderationModel),
          (engine) => moderations(engine, body, { defaults: config.sampling, signal: request.signal, metrics }),
        ),
      {
        body: "ModerationRequest",
        transform: precheck(ModerationRequest),
        detail: {
          summary: "Score a text against the moderation categories (judged by a local model)",
          tags: ["Moderations"],
        },
      },
    );
