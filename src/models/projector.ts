// Multimodal projectors (mmproj-*.gguf): the vision half of a vision-language
// model, a file of its own that goes with the text model beside it.
import { existsSync } from "node:fs";
import { basename, dirname } from "node:path";

/** A multimodal projector by its name, as llama.cpp's converters and the hub name them. */
export function isProjectorFile(path: string): boolean {
  return /^mmproj.*\.gguf$/i.test(basename(path));
}

/**
 * The projector beside a model: the one mmproj-*.gguf of its folder, or of
 * several, the one whose name shares the longest start with the model's.
 */
export function projectorBeside(modelPath: string): string | null {
  const dir = dirname(modelPath);
  if (!existsSync(dir)) return null;
  const found = [...new Bun.Glob("*.gguf").scanSync({ cwd: dir, absolute: true })].filter(isProjectorFile).sort();
  if (found.length <= 1) return found[0] ?? null;
  const stem = basename(modelPath).toLowerCase();
  const shared = (f: string) => {
    const name = basename(f)
      .toLowerCase()
      .replace(/^mmproj[-_.]?/, "");
    let i = 0;
    while (i < name.length && name[i] === stem[i]) i++;
    return i;
  };
  return found.reduce((best, f) => (shared(f) > shared(best) ? f : best));
}
