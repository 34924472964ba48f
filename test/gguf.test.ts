import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expectedFileSize, GgmlType, readGguf, ValueType, writeGguf } from "../src/gguf/gguf";
import { toHalf } from "../src/gguf/synth";
import { TINY_MODEL_PATH } from "../src/models/synthetic";

describe("GGUF", () => {
  test("writer and reader round-trip metadata and tensor layout", () => {
    const dir = mkdtempSync(join(tmpdir(), "llmatic-gguf-"));
    const path = join(dir, "t.gguf");
    const meta = new Map([
      ["general.architecture", { type: ValueType.STRING, value: "test" }],
      ["a.u32", { type: ValueType.UINT32, value: 7 }],
      ["a.f32", { type: ValueType.FLOAT32, value: 0.5 }],
      ["a.bool", { type: ValueType.BOOL, value: true }],
      ["a.arr", { type: ValueType.ARRAY, arrayType: ValueType.STRING, value: ["x", "yé", ""] }],
    ]);
    writeGguf(path, meta, [
      {
        name: "w",
        dims: [4, 2],
        type: GgmlType.F32,
        fill: (o) => new Float32Array(o.buffer).set([1, 2, 3, 4, 5, 6, 7, 8]),
      },
      { name: "q", dims: [32], type: GgmlType.Q8_0, fill: (o) => o.fill(1) },
    ]);
    const g = readGguf(path);
    expect(g.version).toBe(3);
    expect(g.metadata.get("a.u32")?.value).toBe(7);
    expect(g.metadata.get("a.f32")?.value).toBe(0.5);
    expect(g.metadata.get("a.bool")?.value).toBe(true);
    expect(g.metadata.get("a.arr")?.value).toEqual(["x", "yé", ""]);
    expect(g.tensors.map((t) => [t.name, t.dims, t.type])).toEqual([
      ["w", [4, 2], GgmlType.F32],
      ["q", [32], GgmlType.Q8_0],
    ]);
    expect(g.tensors[1]?.offset).toBe(32); // 32 bytes of f32, aligned to 32
    expect(expectedFileSize(g)).toBe(g.dataOffset + 32 + 34);
    // stepping over arrays (model validation) finds the same tensor table
    const skipped = readGguf(path, { arrays: false });
    expect(skipped.metadata.get("a.arr")?.value).toEqual([]);
    expect(skipped.tensors).toEqual(g.tensors);
    expect(skipped.dataOffset).toBe(g.dataOffset);
    expect(g.fileSize).toBe(g.dataOffset + 32 + 64); // each tensor padded to the alignment
    const bytes = readFileSync(path);
    expect(new Float32Array(bytes.buffer.slice(g.dataOffset, g.dataOffset + 32))).toEqual(
      new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]),
    );
  });

  test("a truncated file is detected from its tensor table", () => {
    const dir = mkdtempSync(join(tmpdir(), "llmatic-gguf-"));
    const cut = join(dir, "cut.gguf");
    const full = readFileSync(TINY_MODEL_PATH);
    writeFileSync(cut, full.subarray(0, full.length - 1000));
    const g = readGguf(cut);
    expect(expectedFileSize(g)).toBe(full.length);
    expect(g.fileSize).toBe(full.length - 1000);
  });

  test("half-precision conversion", () => {
    expect(toHalf(0)).toBe(0);
    expect(toHalf(1)).toBe(0x3c00);
    expect(toHalf(-2)).toBe(0xc000);
    expect(toHalf(0.5)).toBe(0x3800);
    expect(toHalf(65504)).toBe(0x7bff);
    expect(toHalf(1e6)).toBe(0x7c00);
  });
});
