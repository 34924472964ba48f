// A small GGUF reader and streaming writer (format v3, little-endian).
// The reader parses the header, metadata and tensor table without reading
// tensor data, so it can validate multi-GB files cheaply; the writer lays out
// the tensor table up front and streams tensor data afterwards.
import { closeSync, fstatSync, openSync, readSync, writeSync } from "node:fs";

export const GGUF_MAGIC = 0x46554747; // "GGUF"
export const GGUF_DEFAULT_ALIGNMENT = 32;

export enum ValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ4_NL = 20,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
}

/** [elements per block, bytes per block] for the types whose size we know. */
const TYPE_SIZE: Partial<Record<number, [number, number]>> = {
  [GgmlType.F32]: [1, 4],
  [GgmlType.F16]: [1, 2],
  [GgmlType.BF16]: [1, 2],
  [GgmlType.F64]: [1, 8],
  [GgmlType.I8]: [1, 1],
  [GgmlType.I16]: [1, 2],
  [GgmlType.I32]: [1, 4],
  [GgmlType.I64]: [1, 8],
  [GgmlType.Q4_0]: [32, 18],
  [GgmlType.Q4_1]: [32, 20],
  [GgmlType.Q5_0]: [32, 22],
  [GgmlType.Q5_1]: [32, 24],
  [GgmlType.Q8_0]: [32, 34],
  [GgmlType.Q8_1]: [32, 36],
  [GgmlType.Q2_K]: [256, 84],
  [GgmlType.Q3_K]: [256, 110],
  [GgmlType.Q4_K]: [256, 144],
  [GgmlType.Q5_K]: [256, 176],
  [GgmlType.Q6_K]: [256, 210],
  [GgmlType.Q8_K]: [256, 292],
  [GgmlType.IQ4_NL]: [32, 18],
  [GgmlType.IQ4_XS]: [256, 136],
};

/** Byte size of a tensor, or undefined for a type this table does not know. */
export function tensorBytes(type: number, dims: readonly number[]): number | undefined {
  const s = TYPE_SIZE[type];
  if (!s) return undefined;
  const n = dims.reduce((a, b) => a * b, 1);
  return (n / s[0]) * s[1];
}

export type MetaValue = number | bigint | boolean | string | MetaValue[];

export interface MetaEntry {
  type: ValueType;
  /** element type when type is ARRAY */
  arrayType?: ValueType;
  value: MetaValue;
}

export interface TensorInfo {
  name: string;
  dims: number[];
  type: number;
  /** offset relative to the start of the data section */
  offset: number;
}

export interface GgufFile {
  version: number;
  metadata: Map<string, MetaEntry>;
  tensors: TensorInfo[];
  alignment: number;
  /** absolute file offset where tensor data starts */
  dataOffset: number;
  fileSize: number;
}

export class GgufError extends Error {}

/** Reads a file through a sliding window so headers of any size parse without loading the data. */
class Cursor {
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  pos = 0;
  constructor(
    private fd: number,
    readonly size: number,
  ) {}

  private need(n: number): void {
    const end = this.pos + n;
    if (end > this.size)
      throw new GgufError(`unexpected end of file at byte ${this.pos} (file has ${this.size} bytes)`);
    if (this.pos >= this.bufStart && end <= this.bufStart + this.buf.length) return;
    const len = Math.min(Math.max(n, 1 << 20), this.size - this.pos);
    this.buf = Buffer.alloc(len);
    readSync(this.fd, this.buf, 0, len, this.pos);
    this.bufStart = this.pos;
  }
  /** Steps over n bytes without reading them (they must exist). */
  skip(n: number): void {
    if (this.pos + n > this.size)
      throw new GgufError(`unexpected end of file at byte ${this.pos} (file has ${this.size} bytes)`);
    this.pos += n;
  }
  private at(n: number): number {
    this.need(n);
    const o = this.pos - this.bufStart;
    this.pos += n;
    return o;
  }
  u8 = () => {
    const o = this.at(1);
    return this.buf.readUInt8(o);
  };
  i8 = () => {
    const o = this.at(1);
    return this.buf.readInt8(o);
  };
  u16 = () => {
    const o = this.at(2);
    return this.buf.readUInt16LE(o);
  };
  i16 = () => {
    const o = this.at(2);
    return this.buf.readInt16LE(o);
  };
  u32 = () => {
    const o = this.at(4);
    return this.buf.readUInt32LE(o);
  };
  i32 = () => {
    const o = this.at(4);
    return this.buf.readInt32LE(o);
  };
  f32 = () => {
    const o = this.at(4);
    return this.buf.readFloatLE(o);
  };
  f64 = () => {
    const o = this.at(8);
    return this.buf.readDoubleLE(o);
  };
  u64 = () => {
    const o = this.at(8);
    return this.buf.readBigUInt64LE(o);
  };
  i64 = () => {
    const o = this.at(8);
    return this.buf.readBigInt64LE(o);
  };
  /** a u64 that must fit a JS number */
  size64(what: string): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufError(`${what} is implausibly large (${v})`);
    return Number(v);
  }
  str(): string {
    const len = this.size64("string length");
    if (len > this.size) throw new GgufError(`string length ${len} exceeds the file size`);
    const o = this.at(len);
    return this.buf.toString("utf8", o, o + len);
  }
}

function readValue(c: Cursor, type: ValueType): MetaValue {
  switch (type) {
    case ValueType.UINT8:
      return c.u8();
    case ValueType.INT8:
      return c.i8();
    case ValueType.UINT16:
      return c.u16();
    case ValueType.INT16:
      return c.i16();
    case ValueType.UINT32:
      return c.u32();
    case ValueType.INT32:
      return c.i32();
    case ValueType.FLOAT32:
      return c.f32();
    case ValueType.BOOL:
      return c.u8() !== 0;
    case ValueType.STRING:
      return c.str();
    case ValueType.UINT64:
      return c.u64();
    case ValueType.INT64:
      return c.i64();
    case ValueType.FLOAT64:
      return c.f64();
    default:
      throw new GgufError(`unknown metadata value type ${type}`);
  }
}

/** Byte sizes of the fixed-size metadata value types. */
const VALUE_SIZE: Partial<Record<ValueType, number>> = {
  [ValueType.UINT8]: 1,
  [ValueType.INT8]: 1,
  [ValueType.BOOL]: 1,
  [ValueType.UINT16]: 2,
  [ValueType.INT16]: 2,
  [ValueType.UINT32]: 4,
  [ValueType.INT32]: 4,
  [ValueType.FLOAT32]: 4,
  [ValueType.UINT64]: 8,
  [ValueType.INT64]: 8,
  [ValueType.FLOAT64]: 8,
};

/** Steps over an array's values (a tokenizer holds 100k+ strings a validation does not need). */
function skipArray(c: Cursor, type: ValueType, n: number): void {
  const size = VALUE_SIZE[type];
  if (size !== undefined) c.skip(size * n);
  else if (type === ValueType.STRING) for (let j = 0; j < n; j++) c.skip(c.size64("string length"));
  else throw new GgufError(`cannot skip arrays of type ${type}`);
}

/**
 * Parses a GGUF file's header, metadata and tensor table. Throws GgufError with a
 * readable reason. With `arrays: false` array metadata is stepped over (value []).
 */
export function readGguf(path: string, opts: { arrays?: boolean } = {}): GgufFile {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    if (size < 24) throw new GgufError(`file is too small to be a GGUF model (${size} bytes)`);
    const c = new Cursor(fd, size);
    const magic = c.u32();
    if (magic !== GGUF_MAGIC) throw new GgufError("not a GGUF file (bad magic number)");
    const version = c.u32();
    if (version < 2 || version > 3) throw new GgufError(`unsupported GGUF version ${version}`);
    const nTensors = c.size64("tensor count");
    const nKv = c.size64("metadata count");
    const metadata = new Map<string, MetaEntry>();
    for (let i = 0; i < nKv; i++) {
      const key = c.str();
      const type = c.u32() as ValueType;
      if (type === ValueType.ARRAY) {
        const arrayType = c.u32() as ValueType;
        const n = c.size64("array length");
        if (opts.arrays === false) {
          skipArray(c, arrayType, n);
          metadata.set(key, { type, arrayType, value: [] });
          continue;
        }
        const value: MetaValue[] = new Array(n);
        for (let j = 0; j < n; j++) value[j] = readValue(c, arrayType);
        metadata.set(key, { type, arrayType, value });
      } else {
        metadata.set(key, { type, value: readValue(c, type) });
      }
    }
    const tensors: TensorInfo[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = c.str();
      const nDims = c.u32();
      if (nDims > 8) throw new GgufError(`tensor ${name} has ${nDims} dimensions`);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(c.size64("tensor dimension"));
      const type = c.u32();
      const offset = c.size64("tensor offset");
      tensors.push({ name, dims, type, offset });
    }
    const alignEntry = metadata.get("general.alignment");
    const alignment = typeof alignEntry?.value === "number" ? alignEntry.value : GGUF_DEFAULT_ALIGNMENT;
    const dataOffset = alignUp(c.pos, alignment);
    return { version, metadata, tensors, alignment, dataOffset, fileSize: size };
  } finally {
    closeSync(fd);
  }
}

/** Bytes the file must have to hold all tensor data we can size, or undefined if unknown. */
export function expectedFileSize(g: GgufFile): number | undefined {
  if (g.tensors.length === 0) return undefined; // vocab-only files end right after the header
  let end = g.dataOffset;
  for (const t of g.tensors) {
    const n = tensorBytes(t.type, t.dims);
    if (n === undefined) return undefined;
    end = Math.max(end, g.dataOffset + t.offset + n);
  }
  return end;
}

export function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

// ---- writer ----------------------------------------------------------------

export interface TensorSpec {
  name: string;
  dims: number[];
  type: GgmlType;
  /** fills `out` (exactly tensorBytes(type, dims) long) with the tensor's data */
  fill: (out: Uint8Array) => void;
}

class Writer {
  private chunks: Buffer[] = [];
  length = 0;
  private push(b: Buffer) {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  u64(v: number | bigint) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  str(s: string) {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.push(b);
  }
  value(type: ValueType, v: MetaValue) {
    const b = Buffer.alloc(8);
    switch (type) {
      case ValueType.UINT8:
        b.writeUInt8(v as number);
        return this.push(b.subarray(0, 1));
      case ValueType.INT8:
        b.writeInt8(v as number);
        return this.push(b.subarray(0, 1));
      case ValueType.UINT16:
        b.writeUInt16LE(v as number);
        return this.push(b.subarray(0, 2));
      case ValueType.INT16:
        b.writeInt16LE(v as number);
        return this.push(b.subarray(0, 2));
      case ValueType.UINT32:
        b.writeUInt32LE(v as number);
        return this.push(b.subarray(0, 4));
      case ValueType.INT32:
        b.writeInt32LE(v as number);
        return this.push(b.subarray(0, 4));
      case ValueType.FLOAT32:
        b.writeFloatLE(v as number);
        return this.push(b.subarray(0, 4));
      case ValueType.BOOL:
        b.writeUInt8(v ? 1 : 0);
        return this.push(b.subarray(0, 1));
      case ValueType.STRING:
        return this.str(v as string);
      case ValueType.UINT64:
        b.writeBigUInt64LE(BigInt(v as number | bigint));
        return this.push(b);
      case ValueType.INT64:
        b.writeBigInt64LE(BigInt(v as number | bigint));
        return this.push(b);
      case ValueType.FLOAT64:
        b.writeDoubleLE(v as number);
        return this.push(b);
      default:
        throw new GgufError(`cannot write value type ${type}`);
    }
  }
  pad(alignment: number) {
    const n = alignUp(this.length, alignment) - this.length;
    if (n) this.push(Buffer.alloc(n));
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Writes a GGUF v3 file: metadata in insertion order, then tensors streamed one by one. */
export function writeGguf(path: string, metadata: Map<string, MetaEntry>, tensors: TensorSpec[]): void {
  const alignment = GGUF_DEFAULT_ALIGNMENT;
  const w = new Writer();
  w.u32(GGUF_MAGIC);
  w.u32(3);
  w.u64(tensors.length);
  w.u64(metadata.size);
  for (const [key, e] of metadata) {
    w.str(key);
    w.u32(e.type);
    if (e.type === ValueType.ARRAY) {
      const arr = e.value as MetaValue[];
      w.u32(e.arrayType as ValueType);
      w.u64(arr.length);
      for (const v of arr) w.value(e.arrayType as ValueType, v);
    } else {
      w.value(e.type, e.value);
    }
  }
  const sizes: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    const n = tensorBytes(t.type, t.dims);
    if (n === undefined || !Number.isInteger(n)) throw new GgufError(`cannot size tensor ${t.name}`);
    w.str(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    sizes.push(n);
    offset = alignUp(offset + n, alignment);
  }
  w.pad(alignment);

  const fd = openSync(path, "w");
  try {
    writeSync(fd, w.bytes());
    const zeros = Buffer.alloc(alignment);
    tensors.forEach((t, i) => {
      const n = sizes[i] as number;
      const data = new Uint8Array(n);
      t.fill(data);
      writeSync(fd, data);
      const pad = alignUp(n, alignment) - n;
      if (pad) writeSync(fd, zeros.subarray(0, pad));
    });
  } finally {
    closeSync(fd);
  }
}
