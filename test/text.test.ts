import { describe, expect, test } from "bun:test";
import { findStop, partialStopLength, TextAssembler } from "../src/engine/text";

const enc = (s: string) => new TextEncoder().encode(s);

describe("TextAssembler", () => {
  test("a character split across tokens is emitted only when complete", () => {
    const t = new TextAssembler([]);
    const llama = enc("🦙"); // F0 9F A6 99
    expect(t.push(llama.subarray(0, 1)).text).toBe("");
    expect(t.push(llama.subarray(1, 3)).text).toBe("");
    expect(t.push(llama.subarray(3)).text).toBe("🦙");
    expect(t.push(enc("!")).text).toBe("!");
    expect(t.text).toBe("🦙!");
  });

  test("a dangling partial character becomes U+FFFD only at the end", () => {
    const t = new TextAssembler([]);
    expect(t.push(enc("ab")).text).toBe("ab");
    expect(t.push(enc("é").subarray(0, 1)).text).toBe("");
    expect(t.flush()).toBe("\uFFFD");
  });

  test("a stop string is cut exactly and never emitted, even split across tokens", () => {
    const t = new TextAssembler(["STOP"]);
    expect(t.push(enc("hello S")).text).toBe("hello ");
    expect(t.push(enc("T")).text).toBe("");
    const r = t.push(enc("OP and more"));
    expect(r).toEqual({ text: "", stop: true });
    expect(t.text).toBe("hello ");
    expect(t.push(enc("x"))).toEqual({ text: "", stop: true });
    expect(t.flush()).toBe("");
  });

  test("held-back text that turns out not to be a stop string is released", () => {
    const t = new TextAssembler(["STOP"]);
    expect(t.push(enc("ST")).text).toBe("");
    expect(t.push(enc("AR")).text).toBe("STAR");
    expect(t.push(enc("ST")).text).toBe("");
    expect(t.flush()).toBe("ST");
    expect(t.text).toBe("STARST");
  });

  test("the earliest of several stop strings wins", () => {
    const t = new TextAssembler(["world", "lo w"]);
    const r = t.push(enc("hello world"));
    expect(r.stop).toBe(true);
    expect(t.text).toBe("hel");
  });

  test("helpers", () => {
    expect(partialStopLength("abc", ["cde", "bcx"])).toBe(2);
    expect(partialStopLength("abc", ["abc"])).toBe(0); // a full match is not partial
    expect(findStop("xxabyyab", ["ab"])).toBe(2);
    expect(findStop("xx", ["ab"])).toBe(-1);
  });
});
