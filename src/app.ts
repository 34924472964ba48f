// The llmatic HTTP app. It never listens: server.ts does, tests call app.handle().
import { Elysia } from "elysia";
import pkg from "../package.json" with { type: "json" };
import type { ServerConfig } from "./config";
import { docs } from "./http/docs";
import { httpLayer } from "./http/layer";
import { Metrics } from "./metrics";
import type { ModelRegistry } from "./registry";
import { audioRoutes } from "./routes/audio";
import { batchRoutes } from "./routes/batches";
import { chatRoutes } from "./routes/chat";
import { completionRoutes } from "./routes/completions";
import { embeddingRoutes } from "./routes/embeddings";
import { fileRoutes } from "./routes/files";
import { fineTuneRoutes } from "./routes/finetunes";
import { healthRoutes } from "./routes/health";
import { legacyRoutes } from "./routes/legacy";
import { messageRoutes } from "./routes/messages";
import { modelRoutes } from "./routes/models";
import { ollamaRoutes } from "./routes/ollama";
import { responseRoutes } from "./routes/responses";
import { tokenRoutes } from "./routes/tokens";
import { uiRoutes } from "./routes/ui";
import { unsupportedRoutes } from "./routes/unsupported";
import { Stores, services } from "./services";
import { MAX_AUDIO_BYTES } from "./services/audio";

export const VERSION: string = pkg.version;

export function createApp(
  registry: ModelRegistry,
  config: ServerConfig,
  metrics = new Metrics(),
  stores = new Stores(config, registry, metrics),
) {
  const svc = services(registry, config, metrics, stores);
  // models pulled or copied over HTTP before are served again
  void stores.library;
  const v1 = new Elysia({ name: "v1", prefix: "/v1" })
    .use(modelRoutes(svc))
    .use(completionRoutes(svc))
    .use(chatRoutes(svc))
    .use(responseRoutes(svc))
    .use(messageRoutes(svc))
    .use(embeddingRoutes(svc))
    .use(fileRoutes(svc))
    .use(legacyRoutes(svc))
    .use(batchRoutes(svc))
    .use(fineTuneRoutes(svc))
    .use(tokenRoutes(svc, "v1"))
    .use(audioRoutes(svc))
    .use(unsupportedRoutes());
  return new Elysia({ name: "llmatic" })
    .use(
      httpLayer({
        apiKeys: config.apiKeys,
        corsOrigins: config.corsOrigins,
        allowedHosts: config.allowedHosts,
        maxBodyBytes: config.maxBodyBytes,
        uploads: {
          "/v1/files": config.maxUploadBytes,
          // the audio routes bound the file themselves (MAX_AUDIO_BYTES); this leaves room for the form
          "/v1/audio/transcriptions": MAX_AUDIO_BYTES + 1024 * 1024,
          "/v1/audio/translations": MAX_AUDIO_BYTES + 1024 * 1024,
        },
        metrics,
      }),
    )
    .use(docs(VERSION))
    .use(healthRoutes(svc))
    .use(uiRoutes())
    .use(ollamaRoutes(svc))
    .use(tokenRoutes(svc, "root"))
    .use(v1);
}

export type App = ReturnType<typeof createApp>;
