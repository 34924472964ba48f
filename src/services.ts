// What the routes are given (Elysia `decorate`): the model registry, the config, the metrics.
import { Elysia } from "elysia";
import type { ServerConfig } from "./config";
import type { Metrics } from "./metrics";
import type { ModelRegistry } from "./registry";

export function services(registry: ModelRegistry, config: ServerConfig, metrics: Metrics) {
  return new Elysia({ name: "services" }).decorate({ registry, config, metrics });
}

export type Services = ReturnType<typeof services>;
