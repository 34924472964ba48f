// Prompt-lookup drafts and the policy that sizes them (pure).
import { describe, expect, test } from "bun:test";
import { DraftPolicy, expectedTokens, ngramDraft } from "../src/engine/draft";

describe("n-gram drafts", () => {
  test("the tokens after the most recent earlier occurrence of the longest suffix", () => {
    // ... 7 8 9 10 ... 7 8 9 -> 10 11
    expect(ngramDraft([1, 7, 8, 9, 10, 11, 2, 3, 7, 8, 9], 2)).toEqual([10, 11]);
    // the longer match wins over a more recent shorter one
    expect(ngramDraft([5, 8, 9, 1, 2, 8, 9, 3, 4, 5, 8, 9], 1)).toEqual([1]);
    // the more recent of two equal matches
    expect(ngramDraft([8, 9, 1, 0, 8, 9, 2, 0, 8, 9], 1)).toEqual([2]);
  });

  test("a repeating text continues with its period past the end of the history", () => {
    expect(ngramDraft([4, 1, 2, 3, 1, 2, 3, 1, 2], 5)).toEqual([3, 1, 2, 3, 1]);
    expect(ngramDraft([6, 6, 6, 6], 3)).toEqual([6, 6, 6]);
  });

  test("no draft without an earlier occurrence, or for max 0", () => {
    expect(ngramDraft([1, 2, 3, 4, 5, 6], 4)).toEqual([]);
    expect(ngramDraft([1, 2, 1, 2], 0)).toEqual([]);
    expect(ngramDraft([1], 4)).toEqual([]);
  });
});

describe("the draft policy", () => {
  test("grows while drafts are kept, shrinks when they are not, pauses after misses", () => {
    const p = new DraftPolicy(8);
    expect(p.next()).toBe(2);
    p.record(2, 2);
    expect(p.next()).toBe(4);
    p.record(4, 4);
    expect(p.next()).toBe(8);
    p.record(8, 8);
    expect(p.next()).toBe(8);
    p.record(8, 3);
    expect(p.next()).toBe(4);
    p.record(4, 0);
    p.record(2, 0);
    // two misses in a row: no drafts for a while, then a probe of one token
    const lengths = Array.from({ length: 5 }, () => p.next());
    expect(lengths).toEqual([0, 0, 0, 0, 1]);
    expect(p.proposed).toBe(28);
    expect(p.accepted).toBe(17);
  });

  test("pauses when a draft's expected tokens do not pay for its wider step", () => {
    expect(expectedTokens(0.5, 0)).toBe(1);
    expect(expectedTokens(0.5, 2)).toBeCloseTo(1.75);
    // a step of w tokens costs 0.6 + 0.4w one-token steps (a CPU where width is dear)
    const dear = (w: number) => 0.6 + 0.4 * w;
    /** drafts made over 200 steps when one token of every 4th draft is kept (text that rarely repeats) */
    const drafts = (cost?: (w: number) => number) => {
      const p = new DraftPolicy(8);
      let made = 0;
      for (let i = 0; i < 200; i++) {
        const k = p.next(cost);
        if (k === 0) continue;
        made++;
        p.record(k, made % 4 === 0 ? 1 : 0);
      }
      return { made, acceptance: p.acceptance };
    };
    const free = drafts();
    const gated = drafts(dear);
    // the partial keeps reset the pauses of the counts alone; against the step's cost the
    // expected gain stays below it, and only the probes after longer and longer pauses draft
    expect(gated.acceptance).toBeLessThan(0.35);
    expect(gated.made).toBeLessThanOrEqual(20);
    expect(free.made).toBeGreaterThan(2 * gated.made);

    // drafts that are kept go on at the same cost, and grow to the longest
    const kept = new DraftPolicy(8);
    const long: number[] = [];
    for (let i = 0; i < 10; i++) {
      const k = kept.next(dear);
      long.push(k);
      kept.record(k, k);
    }
    expect(long.slice(-3)).toEqual([8, 8, 8]);
    // with no timings yet, the lengths are the ones of the counts alone
    expect(new DraftPolicy(8).next(() => undefined)).toBe(2);
  });
});
