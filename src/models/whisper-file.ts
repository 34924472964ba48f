// whisper.cpp's legacy model files (ggml-*.bin): the ggml magic, then eleven
// int32 hyperparameters. Read without loading anything, to list a speech model.
import { closeSync, openSync, readSync } from "node:fs";

/** The hyperparameters a whisper.cpp model file starts with (after the magic), ftype aside. */
export interface WhisperHparams {
  nVocab: number;
  nAudioCtx: number;
  nAudioState: number;
  nAudioHead: number;
  nAudioLayer: number;
  nTextCtx: number;
  nTextState: number;
  nTextHead: number;
  nTextLayer: number;
  nMels: number;
}

export interface WhisperHeader extends WhisperHparams {
  ftype: number;
  /** whisper.cpp: a vocabulary of 51865 tokens or more is multilingual (it can translate) */
  multilingual: boolean;
}

const MAGIC = 0x67676d6c; // "ggml", "lmgg" on disk

/** How whisper.cpp names its model files (ggml-tiny.bin, ggml-base.en-q5_1.bin, ...), with or without a folder. */
export const WHISPER_FILE_NAME = /(^|\/)ggml-[\w.-]+\.bin$/;

/** The header of a whisper.cpp model file, or null when `path` is not one. */
export function readWhisperHeader(path: string): WhisperHeader | null {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return null;
  }
  try {
    const b = Buffer.alloc(48);
    if (readSync(fd, b, 0, 48, 0) !== 48 || b.readUInt32LE(0) !== MAGIC) return null;
    const v = (i: number) => b.readInt32LE(4 + 4 * i);
    const h = {
      nVocab: v(0),
      nAudioCtx: v(1),
      nAudioState: v(2),
      nAudioHead: v(3),
      nAudioLayer: v(4),
      nTextCtx: v(5),
      nTextState: v(6),
      nTextHead: v(7),
      nTextLayer: v(8),
      nMels: v(9),
      ftype: v(10),
    };
    if (Object.values(h).some((x) => x < 0 || x > 1 << 24)) return null;
    return { ...h, multilingual: h.nVocab >= 51865 };
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

export const isWhisperFile = (path: string): boolean => readWhisperHeader(path) !== null;
