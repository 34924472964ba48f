// What the routes are given (Elysia `decorate`): the model registry, the config,
// the metrics, and the stores under the data directory (opened on first use, so
// a server that is never asked for files never touches the disk).
import { Elysia } from "elysia";
import type { ServerConfig } from "./config";
import type { Metrics } from "./metrics";
import type { ModelRegistry } from "./registry";
import { Batches } from "./services/batches";
import { FineTunes } from "./services/finetunes";
import { ModelLibrary } from "./services/library";
import { Responses } from "./services/responses";
import { FileStore } from "./store/files";
import { ResponseStore } from "./store/responses";

export class Stores {
  #files: FileStore | null = null;
  #batches: Batches | null = null;
  #fineTunes: FineTunes | null = null;
  #responseStore: ResponseStore | null = null;
  #responses: Responses | null = null;
  #library: ModelLibrary | null = null;
  constructor(
    private readonly config: ServerConfig,
    private readonly registry: ModelRegistry,
    private readonly metrics?: Metrics,
  ) {}
  get files(): FileStore {
    this.#files ??= new FileStore(this.config.dataDir);
    return this.#files;
  }
  get batches(): Batches {
    this.#batches ??= new Batches(this.config, this.registry, () => this.files, this.metrics);
    return this.#batches;
  }
  get fineTunes(): FineTunes {
    this.#fineTunes ??= new FineTunes(this.config, this.registry, () => this.files);
    return this.#fineTunes;
  }
  /** models pulled and copied over HTTP (read at start: they are served again) */
  get library(): ModelLibrary {
    this.#library ??= new ModelLibrary(this.config.dataDir, this.registry);
    return this.#library;
  }
  get responses(): Responses {
    this.#responses ??= new Responses(
      this.config,
      this.registry,
      () => {
        this.#responseStore ??= new ResponseStore(this.config.dataDir);
        return this.#responseStore;
      },
      this.metrics,
    );
    return this.#responses;
  }
  /** Stops running batches at a clean point (their state is on disk; they resume at the next start), and training. */
  async close(): Promise<void> {
    this.#fineTunes?.close();
    this.#responses?.close();
    await this.#batches?.close();
  }
}

export function services(
  registry: ModelRegistry,
  config: ServerConfig,
  metrics: Metrics,
  stores = new Stores(config, registry, metrics),
) {
  return new Elysia({ name: "services" }).decorate({ registry, config, metrics, stores });
}

export type Services = ReturnType<typeof services>;
