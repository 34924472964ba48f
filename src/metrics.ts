// Server metrics in Prometheus' text format (GET /metrics): requests, tokens in
// and out, recent prompt and generation throughput, queue and slots, and a
// time-to-first-token histogram.
import type { ModelRegistry } from "./registry";

const TTFT_BUCKETS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** window for the tokens/s gauges */
const RATE_WINDOW_MS = 10_000;

class Rate {
  private readonly events: [number, number][] = [];
  add(n: number, at = performance.now()): void {
    this.events.push([at, n]);
    this.trim(at);
  }
  perSecond(now = performance.now()): number {
    this.trim(now);
    const sum = this.events.reduce((a, [, n]) => a + n, 0);
    return sum / (RATE_WINDOW_MS / 1000);
  }
  private trim(now: number): void {
    while (this.events.length && (this.events[0] as [number, number])[0] < now - RATE_WINDOW_MS) this.events.shift();
  }
}

export class Metrics {
  private readonly requests = new Map<string, number>();
  promptTokens = 0;
  cachedTokens = 0;
  completionTokens = 0;
  private readonly ttftCounts = new Array<number>(TTFT_BUCKETS.length + 1).fill(0);
  private ttftSum = 0;
  private ttftCount = 0;
  private readonly promptRate = new Rate();
  private readonly genRate = new Rate();

  request(route: string, status: number): void {
    const key = `route="${route}",status="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  /** a request was admitted: its prompt is (being) processed */
  prompt(tokens: number, cached: number): void {
    this.promptTokens += tokens;
    this.cachedTokens += cached;
    this.promptRate.add(tokens - cached);
  }

  firstToken(seconds: number): void {
    this.ttftSum += seconds;
    this.ttftCount++;
    const i = TTFT_BUCKETS.findIndex((b) => seconds <= b);
    const slot = i < 0 ? TTFT_BUCKETS.length : i;
    this.ttftCounts[slot] = (this.ttftCounts[slot] ?? 0) + 1;
  }

  generated(tokens: number): void {
    this.completionTokens += tokens;
    this.genRate.add(tokens);
  }

  render(registry: ModelRegistry): string {
    const out: string[] = [];
    const metric = (name: string, type: string, help: string, lines: string[]) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
    };
    metric(
      "llmatic_requests_total",
      "counter",
      "HTTP requests by route and status",
      [...this.requests].map(([k, v]) => `llmatic_requests_total{${k}} ${v}`),
    );
    metric("llmatic_prompt_tokens_total", "counter", "Prompt tokens received", [
      `llmatic_prompt_tokens_total ${this.promptTokens}`,
    ]);
    metric("llmatic_prompt_tokens_cached_total", "counter", "Prompt tokens reused from a slot's cache", [
      `llmatic_prompt_tokens_cached_total ${this.cachedTokens}`,
    ]);
    metric("llmatic_completion_tokens_total", "counter", "Tokens generated", [
      `llmatic_completion_tokens_total ${this.completionTokens}`,
    ]);
    metric("llmatic_prompt_tokens_per_second", "gauge", "Prompt tokens processed per second over the last 10 s", [
      `llmatic_prompt_tokens_per_second ${this.promptRate.perSecond().toFixed(3)}`,
    ]);
    metric("llmatic_generation_tokens_per_second", "gauge", "Tokens generated per second over the last 10 s", [
      `llmatic_generation_tokens_per_second ${this.genRate.perSecond().toFixed(3)}`,
    ]);
    const stats = registry.stats();
    metric(
      "llmatic_queue_length",
      "gauge",
      "Requests waiting for a slot",
      stats.map((s) => `llmatic_queue_length{model="${s.id}"} ${s.stats?.queued ?? 0}`),
    );
    metric(
      "llmatic_slots_busy",
      "gauge",
      "Slots decoding a request",
      stats.map((s) => `llmatic_slots_busy{model="${s.id}"} ${s.stats?.slotsBusy ?? 0}`),
    );
    metric(
      "llmatic_prompt_tokens_copied_total",
      "counter",
      "Prompt tokens whose KV was copied from another slot that held the same prefix, instead of computed",
      stats.map((s) => `llmatic_prompt_tokens_copied_total{model="${s.id}"} ${s.stats?.prefixCopied ?? 0}`),
    );
    metric(
      "llmatic_prompt_tokens_restored_total",
      "counter",
      "Prompt tokens loaded back from the host-memory cache of evicted prefixes (--cache-ram), instead of computed",
      stats.map((s) => `llmatic_prompt_tokens_restored_total{model="${s.id}"} ${s.stats?.prefixRestored ?? 0}`),
    );
    metric(
      "llmatic_draft_tokens_total",
      "counter",
      "Speculative decoding: draft tokens (n-gram or --model-draft) decoded beside the sampled ones",
      stats.map((s) => `llmatic_draft_tokens_total{model="${s.id}"} ${s.stats?.draftProposed ?? 0}`),
    );
    metric(
      "llmatic_draft_accepted_total",
      "counter",
      "Speculative decoding: draft tokens the model picked (kept, each saving a decode step)",
      stats.map((s) => `llmatic_draft_accepted_total{model="${s.id}"} ${s.stats?.draftAccepted ?? 0}`),
    );
    metric(
      "llmatic_slots_total",
      "gauge",
      "Slots of a loaded model",
      stats.map((s) => `llmatic_slots_total{model="${s.id}"} ${s.stats?.slotsTotal ?? 0}`),
    );
    metric(
      "llmatic_model_loaded",
      "gauge",
      "1 when the model is ready",
      stats.map((s) => `llmatic_model_loaded{model="${s.id}"} ${s.state === "ready" ? 1 : 0}`),
    );
    metric(
      "llmatic_engine_restarts_total",
      "counter",
      "Times the model's engine process died (signal, abort, out of memory) and was restarted",
      stats.map((s) => `llmatic_engine_restarts_total{model="${s.id}"} ${s.restarts}`),
    );
    metric(
      "llmatic_model_load_failures",
      "gauge",
      "Failed loads or crashes in a row (0 once the model is up again)",
      stats.map((s) => `llmatic_model_load_failures{model="${s.id}"} ${s.state === "ready" ? 0 : s.failures}`),
    );
    let cum = 0;
    const buckets = TTFT_BUCKETS.map((b, i) => {
      cum += this.ttftCounts[i] as number;
      return `llmatic_time_to_first_token_seconds_bucket{le="${b}"} ${cum}`;
    });
    metric("llmatic_time_to_first_token_seconds", "histogram", "From request arrival to the first generated text", [
      ...buckets,
      `llmatic_time_to_first_token_seconds_bucket{le="+Inf"} ${this.ttftCount}`,
      `llmatic_time_to_first_token_seconds_sum ${this.ttftSum.toFixed(6)}`,
      `llmatic_time_to_first_token_seconds_count ${this.ttftCount}`,
    ]);
    return `${out.join("\n")}\n`;
  }
}
