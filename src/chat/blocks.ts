// An answer as the dialects that speak in blocks see it (the Responses API's
// output items, Anthropic's content blocks): reasoning, text and tool calls, in
// the order the model wrote them, each opened, grown and closed before the next
// one starts. BlockStream turns the engine's text events into these steps;
// blocksOf reads a finished answer. Pure; tested frame by frame.
import type { GenerateEvent } from "../engine/types";

export type BlockKind = "reasoning" | "text" | "tool";

export interface Block {
  /** position among the answer's blocks */
  index: number;
  kind: BlockKind;
  /** reasoning or text so far; a tool call's arguments (JSON) so far */
  text: string;
  /** tool calls: the call's id (never empty) and the function's name */
  id?: string;
  name?: string;
  /** tool calls: the engine's index of the call */
  call?: number;
}

export type BlockStep =
  | { type: "open"; block: Block }
  | { type: "delta"; block: Block; delta: string }
  | { type: "close"; block: Block };

type TextEvent = Extract<GenerateEvent, { type: "text" }>;
type EndEvent = Extract<GenerateEvent, { type: "end" }>;

export class BlockStream {
  readonly blocks: Block[] = [];
  private open: Block | null = null;
  private tokens = 0;
  /** generated tokens that went into reasoning (those of the events that carried reasoning) */
  reasoningTokens = 0;

  /** The steps one text event makes. */
  push(e: TextEvent): BlockStep[] {
    const steps: BlockStep[] = [];
    if (e.delta?.reasoning) this.reasoningTokens += e.tokens - this.tokens;
    this.tokens = e.tokens;
    if (!e.delta) {
      if (e.text) this.grow(steps, "text", e.text);
      return steps;
    }
    if (e.delta.reasoning) this.grow(steps, "reasoning", e.delta.reasoning);
    if (e.delta.content) this.grow(steps, "text", e.delta.content);
    for (const c of e.delta.toolCalls) {
      const o = this.open;
      if (o?.kind === "tool" && o.call === c.index) {
        if (c.arguments) this.delta(steps, o, c.arguments);
        continue;
      }
      this.closeOpen(steps);
      const block: Block = {
        index: this.blocks.length,
        kind: "tool",
        text: "",
        id: c.id,
        name: c.name ?? "",
        call: c.index,
      };
      this.start(steps, block);
      if (c.arguments) this.delta(steps, block, c.arguments);
    }
    return steps;
  }

  /**
   * The steps that end the answer: the open block closes. With the end event,
   * what the final parse adds to the open block is sent first (streamed deltas
   * only ever extend what was sent; the final parse is the answer of record).
   */
  finish(end?: EndEvent): BlockStep[] {
    const steps: BlockStep[] = [];
    const o = this.open;
    const m = end?.message;
    if (o && m) {
      const final =
        o.kind === "text" ? m.content : o.kind === "reasoning" ? m.reasoning : m.toolCalls[o.call ?? -1]?.arguments;
      if (final && final.length > o.text.length && final.startsWith(o.text))
        this.delta(steps, o, final.slice(o.text.length));
    }
    this.closeOpen(steps);
    return steps;
  }

  get hasToolCalls(): boolean {
    return this.blocks.some((b) => b.kind === "tool");
  }

  private grow(steps: BlockStep[], kind: "reasoning" | "text", text: string): void {
    let o = this.open;
    if (o?.kind !== kind) {
      this.closeOpen(steps);
      o = { index: this.blocks.length, kind, text: "" };
      this.start(steps, o);
    }
    this.delta(steps, o, text);
  }

  private start(steps: BlockStep[], block: Block): void {
    this.blocks.push(block);
    this.open = block;
    steps.push({ type: "open", block: { ...block } });
  }

  private delta(steps: BlockStep[], block: Block, delta: string): void {
    block.text += delta;
    steps.push({ type: "delta", block, delta });
  }

  private closeOpen(steps: BlockStep[]): void {
    if (!this.open) return;
    steps.push({ type: "close", block: this.open });
    this.open = null;
  }
}

/** A finished answer's blocks: reasoning, text, then each tool call (empty ones left out). */
export function blocksOf(end: EndEvent): Block[] {
  const m = end.message;
  const out: Block[] = [];
  const add = (b: Omit<Block, "index">) => out.push({ index: out.length, ...b });
  if (!m) {
    if (end.text) add({ kind: "text", text: end.text });
    return out;
  }
  if (m.reasoning) add({ kind: "reasoning", text: m.reasoning });
  if (m.content) add({ kind: "text", text: m.content });
  m.toolCalls.forEach((c, i) => {
    add({ kind: "tool", text: c.arguments, id: c.id, name: c.name, call: i });
  });
  return out;
}
