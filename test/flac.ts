// A minimal FLAC encoder for tests: 16-bit mono PCM in verbatim subframes (no
// compression), with the stream header, frame headers and both CRCs as the
// format defines them. Enough to check that llmatic decodes FLAC.

class Bits {
  private bytes: number[] = [];
  private acc = 0;
  private n = 0;
  put(value: number, width: number): void {
    for (let i = width - 1; i >= 0; i--) {
      this.acc = (this.acc << 1) | (Math.floor(value / 2 ** i) & 1);
      if (++this.n === 8) {
        this.bytes.push(this.acc);
        this.acc = 0;
        this.n = 0;
      }
    }
  }
  align(): void {
    while (this.n !== 0) this.put(0, 1);
  }
  get length(): number {
    return this.bytes.length;
  }
  slice(from: number): number[] {
    return this.bytes.slice(from);
  }
  done(): Uint8Array {
    this.align();
    return Uint8Array.from(this.bytes);
  }
}

function crc(bytes: number[], poly: number, width: 8 | 16): number {
  let c = 0;
  const top = 1 << (width - 1);
  const mask = (1 << width) - 1;
  for (const b of bytes) {
    c ^= b << (width - 8);
    for (let i = 0; i < 8; i++) c = c & top ? ((c << 1) ^ poly) & mask : (c << 1) & mask;
  }
  return c;
}

/** 16 kHz (or `rate`) mono 16-bit samples -> a FLAC file. */
export function encodeFlac(samples: Int16Array, rate = 16000): Uint8Array {
  const BLOCK = 4096;
  const w = new Bits();
  for (const ch of "fLaC") w.put(ch.charCodeAt(0), 8);
  // STREAMINFO, the last metadata block
  w.put(1, 1);
  w.put(0, 7);
  w.put(34, 24);
  w.put(BLOCK, 16);
  w.put(BLOCK, 16);
  w.put(0, 24);
  w.put(0, 24);
  w.put(rate, 20);
  w.put(0, 3); // channels - 1
  w.put(15, 5); // bits per sample - 1
  w.put(samples.length, 36);
  for (let i = 0; i < 16; i++) w.put(0, 8); // no MD5
  for (let f = 0, at = 0; at < samples.length; f++, at += BLOCK) {
    if (f > 127) throw new Error("encodeFlac writes at most 128 frames");
    const n = Math.min(BLOCK, samples.length - at);
    const start = w.length;
    w.put(0b11111111111110, 14);
    w.put(0, 1); // reserved
    w.put(0, 1); // fixed block size
    w.put(0b0111, 4); // block size - 1 in 16 bits after the header
    w.put(0b0000, 4); // sample rate from STREAMINFO
    w.put(0b0000, 4); // mono
    w.put(0b100, 3); // 16 bits per sample
    w.put(0, 1);
    w.put(f, 8); // frame number (UTF-8 coded: one byte below 128)
    w.put(n - 1, 16);
    w.put(crc(w.slice(start), 0x07, 8), 8);
    // one verbatim subframe
    w.put(0, 1);
    w.put(0b000001, 6);
    w.put(0, 1);
    for (let i = 0; i < n; i++) w.put((samples[at + i] as number) & 0xffff, 16);
    w.align();
    w.put(crc(w.slice(start), 0x8005, 16), 16);
  }
  return w.done();
}
