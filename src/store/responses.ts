// Stored responses (the Responses API's store: true), one JSON file each under
// <data>/responses/: the response object, its input items (input_items) and the
// conversation up to its output (what previous_response_id continues from).
// Written to a temp file, fsynced and renamed, so a restart finds each one
// whole. Background responses leave a marker in running/ while they run; a
// marker found at start means the server stopped before it finished: that
// response is marked failed (a client polling it learns so, never waits forever).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fsyncDir, writeFileAtomic } from "../atomic";
import { notFound } from "../errors";
import type { TemplateMessage } from "../ffi/chat";
import { log } from "../log";
import type { ResponseObject } from "../responses/output";

export interface StoredResponse {
  response: ResponseObject;
  /** this response's input items, as the client gave them (each with an id) */
  inputItems: Record<string, unknown>[];
  /** the conversation up to and including this response's output */
  conversation: TemplateMessage[];
}

const ID = /^resp_[A-Za-z0-9_-]{1,64}$/;

export class ResponseStore {
  private readonly dir: string;
  private readonly running: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, "responses");
    this.running = join(this.dir, "running");
    mkdirSync(this.running, { recursive: true, mode: 0o700 });
    this.recover();
  }

  private path(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  /** The stored response `id`, or a not-found error (also for ids that cannot be ours). */
  get(id: string): StoredResponse {
    const found = ID.test(id) ? this.read(id) : null;
    if (!found) throw notFound(`No response found with id '${id}'`, "response_id");
    return found;
  }

  has(id: string): boolean {
    return ID.test(id) && existsSync(this.path(id));
  }

  put(s: StoredResponse): void {
    writeFileAtomic(this.path(s.response.id), JSON.stringify(s));
  }

  delete(id: string): void {
    if (!this.has(id)) throw notFound(`No response found with id '${id}'`, "response_id");
    rmSync(this.path(id), { force: true });
    rmSync(join(this.running, id), { force: true });
    fsyncDir(this.dir);
  }

  /** A background response starts (a restart before finished() marks it failed). */
  started(id: string): void {
    writeFileSync(join(this.running, id), "");
    fsyncDir(this.running);
  }

  finished(id: string): void {
    rmSync(join(this.running, id), { force: true });
  }

  private read(id: string): StoredResponse | null {
    try {
      return JSON.parse(readFileSync(this.path(id), "utf8")) as StoredResponse;
    } catch {
      return null;
    }
  }

  private recover(): void {
    for (const id of readdirSync(this.running)) {
      const s = ID.test(id) ? this.read(id) : null;
      if (s && (s.response.status === "queued" || s.response.status === "in_progress")) {
        s.response = {
          ...s.response,
          status: "failed",
          error: { code: "server_error", message: "the server stopped before this background response finished" },
        };
        this.put(s);
        log.warn(`response ${id}: the server stopped while it ran; marked failed`);
      }
      rmSync(join(this.running, id), { force: true });
    }
  }
}
