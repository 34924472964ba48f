// Tokenizer round trips against llama.cpp's own vocab test vectors (.inp/.out).
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { llamaSourceDir } from "../native/build";
import { Model } from "../src/ffi/model";
import { TINY_MODEL_PATH } from "../src/models/synthetic";

const src = await llamaSourceDir();
const models: Model[] = [];
afterAll(() => {
  for (const m of models) m.dispose();
});

function vectors(name: string): { text: string; tokens: number[] }[] {
  const base = join(src, "models", `ggml-vocab-${name}.gguf`);
  const inp = readFileSync(`${base}.inp`, "utf8").split("\n__ggml_vocab_test__\n");
  const out = readFileSync(`${base}.out`, "utf8").split("\n");
  // the .inp file ends with a separator line, so the last piece is empty
  if (inp.at(-1) === "" || inp.at(-1) === "\n") inp.pop();
  return inp.map((text, i) => ({
    text,
    tokens: (out[i] ?? "").trim().split(" ").filter(Boolean).map(Number),
  }));
}

for (const name of ["qwen2", "llama-spm", "gpt-2", "llama-bpe"]) {
  describe(`vocab ${name}`, () => {
    const model = Model.load(join(src, "models", `ggml-vocab-${name}.gguf`), { vocabOnly: true });
    models.push(model);
    const cases = vectors(name);

    test("has test vectors", () => {
      expect(cases.length).toBeGreaterThan(20);
    });

    test("tokenize matches llama.cpp's expected tokens and detokenize inverts it", () => {
      for (const c of cases) {
        const got = [...model.tokenize(c.text, false, false)];
        expect({ text: c.text, tokens: got }).toEqual({ text: c.text, tokens: c.tokens });
        expect(model.detokenize(got)).toBe(model.detokenize(c.tokens));
        if (name !== "llama-spm") expect(model.detokenize(got)).toBe(c.text); // byte-level BPE is lossless
      }
    });
  });
}

test("the generated test model tokenizes exactly like the Qwen2 vocab it copies", () => {
  const tiny = Model.load(TINY_MODEL_PATH, { vocabOnly: true });
  models.push(tiny);
  for (const c of vectors("qwen2")) expect([...tiny.tokenize(c.text, false, false)]).toEqual(c.tokens);
  // Qwen2.5's added tokens are real special tokens in it
  expect([...tiny.tokenize("<tool_call>", false, true)]).toEqual([151657]);
  expect([...tiny.tokenize("<|im_end|>", false, true)]).toEqual([151645]);
  expect(tiny.isEog(151645)).toBe(true);
});
