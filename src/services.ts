// What the routes are given (Elysia `decorate`): the model registry and the config.
import { Elysia } from "elysia";
import type { ServerConfig } from "./config";
import type { ModelRegistry } from "./registry";

export function services(registry: ModelRegistry, config: ServerConfig) {
  return new Elysia({ name: "services" }).decorate({ registry, config });
}

export type Services = ReturnType<typeof services>;
