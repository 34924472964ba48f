// Speech for tests and the media benchmark: JFK's "ask not" clip (11 s), as
// whisper.cpp ships it (samples/jfk.mp3, bindings/go/samples/jfk.wav), taken
// from the npm package nodejs-whisper@0.3.1 by its pinned integrity. Nothing
// else of the package is used or installed.
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { cacheDir } from "../paths";

export const SAMPLES_PIN = {
  npmPackage: "nodejs-whisper@0.3.1",
  tarball: "https://registry.npmjs.org/nodejs-whisper/-/nodejs-whisper-0.3.1.tgz",
  integrity: "sha512-ceoilUVraRuR5FnNyXpGQT2auAR48Oc3AQBEmkXnVpSn9iN6yVRzQBFCqVTGWbk6Wdi95NhvwXNzFvuR7erLWw==",
} as const;

const FILES = {
  wav: "package/cpp/whisper.cpp/bindings/go/samples/jfk.wav",
  mp3: "package/cpp/whisper.cpp/samples/jfk.mp3",
} as const;

/** Paths of jfk.wav and jfk.mp3 (fetched and unpacked once into the cache). */
export async function speechSamples(): Promise<{ wav: string; mp3: string }> {
  const dir = join(cacheDir(), "samples");
  const out = { wav: join(dir, "jfk.wav"), mp3: join(dir, "jfk.mp3") };
  if (existsSync(out.wav) && existsSync(out.mp3)) return out;
  mkdirSync(dir, { recursive: true });
  const { downloadPinned } = await import("../../native/build");
  const tgz = join(dir, "nodejs-whisper-0.3.1.tgz");
  await downloadPinned(SAMPLES_PIN, tgz, "whisper.cpp's jfk samples, ~6 MB", { quiet: true });
  const tmp = join(dir, "unpack.tmp");
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const p = Bun.spawnSync(["tar", "-xzf", tgz, "-C", tmp, FILES.wav, FILES.mp3]);
  if (p.exitCode !== 0) throw new Error(`unpacking ${tgz} failed: ${p.stderr.toString()}`);
  renameSync(join(tmp, FILES.wav), out.wav);
  renameSync(join(tmp, FILES.mp3), out.mp3);
  rmSync(tmp, { recursive: true, force: true });
  rmSync(tgz, { force: true });
  return out;
}
