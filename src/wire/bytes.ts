/**
 * Bounds-checked binary reading and writing: the only place that turns bytes into numbers and back.
 *
 * Integers on the wire are unsigned LEB128 varints up to 2^53 - 1 (LSNs, page numbers, epochs, lengths);
 * strings are a varint length and UTF-8. A reader never reads past its end and never allocates more
 * than the bytes it was given: every failure is a PROTOCOL_ERROR, never a RangeError or a huge buffer.
 */
import { BorealisError } from "../core/errors.js";

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;

  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(initialCapacity);
    this.view = new DataView(this.buf.buffer);
  }

  get length(): number {
    return this.pos;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.view.setUint16(this.pos, v, true);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.view.setUint32(this.pos, v >>> 0, true);
    this.pos += 4;
    return this;
  }

  /** Unsigned LEB128 of a safe integer. */
  varint(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint out of range: ${v}`);
    this.ensure(8);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
    return this;
  }

  bool(v: boolean): this {
    return this.u8(v ? 1 : 0);
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.byteLength);
    this.buf.set(b, this.pos);
    this.pos += b.byteLength;
    return this;
  }

  /** Length-prefixed bytes. */
  blob(b: Uint8Array): this {
    return this.varint(b.byteLength).bytes(b);
  }

  string(s: string): this {
    return this.blob(textEncoder.encode(s));
  }

  /** Reserves `n` bytes to be filled later (e.g. a checksum); returns their offset. */
  reserve(n: number): number {
    this.ensure(n);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  patchU32(at: number, v: number): void {
    this.view.setUint32(at, v >>> 0, true);
  }

  /** The bytes written so far (a view, not a copy: do not write more afterwards). */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

export class ByteReader {
  private pos: number;
  private readonly view: DataView;

  constructor(private readonly buf: Uint8Array, start = 0, private readonly end = buf.byteLength) {
    this.pos = start;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (n > this.end - this.pos) {
      throw new BorealisError("PROTOCOL_ERROR", `truncated input: ${what} needs ${n} bytes, ${this.end - this.pos} left`);
    }
  }

  u8(what = "u8"): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }

  u16(what = "u16"): number {
    this.need(2, what);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  u32(what = "u32"): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  varint(what = "varint"): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      this.need(1, what);
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(result)) break;
        return result;
      }
      scale *= 0x80;
    }
    throw new BorealisError("PROTOCOL_ERROR", `${what}: varint longer than 2^53`);
  }

  bool(what = "bool"): boolean {
    const v = this.u8(what);
    if (v > 1) throw new BorealisError("PROTOCOL_ERROR", `${what}: expected 0 or 1, got ${v}`);
    return v === 1;
  }

  /** `n` bytes as a view into the input (no copy). */
  bytes(n: number, what = "bytes"): Uint8Array {
    this.need(n, what);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  blob(what = "blob"): Uint8Array {
    return this.bytes(this.varint(`${what} length`), what);
  }

  string(what = "string"): string {
    const b = this.blob(what);
    try {
      return textDecoder.decode(b);
    } catch {
      throw new BorealisError("PROTOCOL_ERROR", `${what}: invalid UTF-8`);
    }
  }

  /** Fails unless every byte was consumed: trailing garbage is a protocol error, not ignored. */
  end_(what = "message"): void {
    if (this.pos !== this.end) {
      throw new BorealisError("PROTOCOL_ERROR", `${what}: ${this.end - this.pos} unexpected trailing bytes`);
    }
  }
}
