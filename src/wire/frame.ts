/**
 * Frames: how one message travels on a byte stream (docs/wire-protocol.md, "Framing").
 *
 *     u32 bodyLength         little-endian, bytes of `body`; checked against the limit before anything
 *                            is allocated or accumulated
 *     u32 crc32c(body)       CRC32C of `body`
 *     body:
 *       u8  kind             0 request | 1 response
 *       u32 requestId        chosen by the requester, echoed in the response; 0 means "unknown"
 *       …   message          `messages.ts`: u8 type tag, then the message's fields
 *
 * This module owns the stream decoder and the frame encoders. It knows nothing about connections or
 * handshakes: the RPC layer (`rpc-server.ts`, `rpc-client.ts`) raises the decoder's limit after `hello`
 * and decides what to do with a decoding error (answer it, then close).
 *
 * TCP may split a frame anywhere, so the decoder is fed arbitrary chunks. In the common case a chunk
 * holds whole frames and the decoder hands out views into it without copying; only a frame that spans
 * chunks is assembled, once, when its last byte arrives. Bytes of a frame not yet complete are held as
 * the chunks that carried them, so a peer that declares 16 MiB and sends 8 bytes costs 8 bytes, not 16 MiB.
 */
import { BorealisError } from "../core/errors.js";
import { assert } from "../core/assert.js";
import { crc32c } from "../core/checksum.js";
import type { SegmentKey } from "../core/types.js";
import { ByteWriter } from "./bytes.js";
import { writeRequest, writeResponse, type Request, type Response } from "./messages.js";

/** `[u32 bodyLength][u32 crc32c]` */
export const FRAME_HEADER_BYTES = 8;
/** `[u8 kind][u32 requestId]` at the start of every body. */
export const BODY_HEADER_BYTES = 5;

/** The default frame limit once a connection has said hello (bytes of body). */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
/**
 * The limit before `hello` has been answered. A peer that has not introduced itself may not make this
 * process allocate more than this per frame (Redis CVE-2021-32675, fixed by tiny pre-auth limits).
 */
export const PRE_HELLO_MAX_FRAME_BYTES = 64 * 1024;
/**
 * No peer may negotiate a limit below this: every error response and every hello must fit. 4 KiB holds
 * any error message this code produces.
 */
export const MIN_MAX_FRAME_BYTES = 4096;
/** The largest limit anyone may configure: the length field is a u32, and 1 GiB is already absurd. */
export const MAX_MAX_FRAME_BYTES = 1024 * 1024 * 1024;

export const FrameKind = { REQUEST: 0, RESPONSE: 1 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export interface Frame {
  readonly kind: FrameKind;
  readonly requestId: number;
  /**
   * The message (type tag and fields): a view into the received bytes, not a copy. Decoded records
   * point into it too, so it stays alive as long as they do.
   */
  readonly message: Uint8Array;
}

/**
 * CRC32C of a frame body. Pings, pongs and write acks are 6–16 bytes of body, where the native
 * call (`core/checksum.ts`) costs ~0.3 µs of call overhead — about 9% of a ping's CPU; a table lookup
 * per byte is several times cheaper there. Same polynomial, same result (tested against `crc32c`).
 */
export function frameCrc(bytes: Uint8Array): number {
  if (bytes.byteLength > SMALL_CRC_BYTES) return crc32c(bytes);
  let c = 0xffffffff;
  for (let i = 0; i < bytes.byteLength; i++) c = CRC32C_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const SMALL_CRC_BYTES = 16;
const CRC32C_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

function readU32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

// ------------------------------------------------------------------------------------------- decoding

/**
 * Turns a byte stream into frames. Feed it every chunk in order with `push`; it calls `onFrame` for each
 * complete, checksum-verified frame, in order, before `push` returns.
 *
 * Errors (all `BorealisError`s, thrown from `push` after every complete frame before the bad one has
 * been delivered): FRAME_TOO_LARGE when a declared length exceeds `maxFrameBytes` (detected from the
 * 8-byte header alone), PROTOCOL_ERROR for a body too short to hold its header or an unknown kind,
 * CHECKSUM_MISMATCH when the body does not match its CRC. After an error the stream is out of sync for
 * good: the decoder stays failed and every later `push` throws the same error.
 */
export class FrameDecoder {
  private limit: number;
  /** Bytes of the current frame's header received so far (only used when a header spans chunks). */
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);
  private headerFill = 0;
  /** The frame being assembled across chunks: its declared length and CRC, and the parts received. */
  private bodyLength = -1;
  private bodyCrc = 0;
  private parts: Uint8Array[] = [];
  private partsBytes = 0;
  private failure: BorealisError | null = null;

  constructor(options: { maxFrameBytes: number }) {
    this.limit = checkLimit(options.maxFrameBytes);
  }

  /** The largest body accepted. Raising it (after hello) applies to the next frame header read. */
  get maxFrameBytes(): number {
    return this.limit;
  }

  set maxFrameBytes(n: number) {
    this.limit = checkLimit(n);
  }

  /** True while bytes of an incomplete frame are held: the RPC server's slowloris deadline runs then. */
  get hasPartialFrame(): boolean {
    return this.headerFill > 0 || this.bodyLength >= 0;
  }

  /** Bytes held for the incomplete frame (never more than its declared length). */
  get bufferedBytes(): number {
    return this.headerFill + this.partsBytes;
  }

  get failed(): BorealisError | null {
    return this.failure;
  }

  /**
   * Consumes `chunk`. `onFrame` must not keep a reference to the Frame object itself beyond the call if
   * it wants to be cheap — but it may keep `frame.message` (a view that is never overwritten).
   */
  push(chunk: Uint8Array, onFrame: (frame: Frame) => void): void {
    if (this.failure !== null) throw this.failure;
    try {
      this.consume(chunk, onFrame);
    } catch (e) {
      this.failure = e instanceof BorealisError ? e : new BorealisError("PROTOCOL_ERROR", `frame decoder: ${String(e)}`, {}, { cause: e });
      throw this.failure;
    }
  }

  private consume(chunk: Uint8Array, onFrame: (frame: Frame) => void): void {
    const end = chunk.byteLength;
    let pos = 0;
    while (pos < end) {
      if (this.bodyLength < 0) {
        // Between frames, or inside a header that spans chunks.
        let length: number;
        let crc: number;
        if (this.headerFill === 0 && end - pos >= FRAME_HEADER_BYTES) {
          length = readU32(chunk, pos);
          crc = readU32(chunk, pos + 4);
          pos += FRAME_HEADER_BYTES;
        } else {
          const n = Math.min(FRAME_HEADER_BYTES - this.headerFill, end - pos);
          this.header.set(chunk.subarray(pos, pos + n), this.headerFill);
          this.headerFill += n;
          pos += n;
          if (this.headerFill < FRAME_HEADER_BYTES) return;
          this.headerFill = 0;
          length = readU32(this.header, 0);
          crc = readU32(this.header, 4);
        }
        this.checkLength(length);
        if (end - pos >= length) {
          // The common case: the whole body is in this chunk. Hand out a view, copy nothing.
          const body = chunk.subarray(pos, pos + length);
          pos += length;
          deliver(body, crc, onFrame);
          continue;
        }
        this.bodyLength = length;
        this.bodyCrc = crc;
      }
      // Inside a body that spans chunks: hold the pieces, assemble once complete.
      const n = Math.min(this.bodyLength - this.partsBytes, end - pos);
      this.parts.push(chunk.subarray(pos, pos + n));
      this.partsBytes += n;
      pos += n;
      if (this.partsBytes === this.bodyLength) {
        const body = concat(this.parts, this.partsBytes);
        const crc = this.bodyCrc;
        this.parts = [];
        this.partsBytes = 0;
        this.bodyLength = -1;
        deliver(body, crc, onFrame);
      }
    }
  }

  private checkLength(length: number): void {
    if (length > this.limit) {
      throw new BorealisError("FRAME_TOO_LARGE", `frame declares ${length} bytes; the limit is ${this.limit}`, { length, limit: this.limit });
    }
    if (length < BODY_HEADER_BYTES) {
      throw new BorealisError("PROTOCOL_ERROR", `frame declares ${length} bytes; a body holds at least ${BODY_HEADER_BYTES}`);
    }
  }
}

function checkLimit(n: number): number {
  assert(Number.isSafeInteger(n) && n >= MIN_MAX_FRAME_BYTES && n <= MAX_MAX_FRAME_BYTES,
    `max frame bytes must be in [${MIN_MAX_FRAME_BYTES}, ${MAX_MAX_FRAME_BYTES}], got ${n}`);
  return n;
}

function deliver(body: Uint8Array, crc: number, onFrame: (frame: Frame) => void): void {
  const actual = frameCrc(body);
  if (actual !== crc) {
    throw new BorealisError("CHECKSUM_MISMATCH", `frame of ${body.byteLength} bytes failed its checksum`);
  }
  const kind = body[0]!;
  if (kind !== FrameKind.REQUEST && kind !== FrameKind.RESPONSE) {
    throw new BorealisError("PROTOCOL_ERROR", `unknown frame kind ${kind}`);
  }
  onFrame({ kind, requestId: readU32(body, 1), message: body.subarray(BODY_HEADER_BYTES) });
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  assert(at === total, "frame parts add up to the declared length");
  return out;
}

// ------------------------------------------------------------------------------------------- encoding

/**
 * Builds one frame in one buffer: `writeMessage` appends the message to a writer that already holds the
 * frame and body headers; length and CRC are patched in afterwards. `sizeHint` (bytes of message) sizes
 * the buffer so that the writer never has to grow, which keeps it to one allocation.
 */
export function encodeFrame(kind: FrameKind, requestId: number, sizeHint: number, writeMessage: (w: ByteWriter) => void): Uint8Array {
  assert(requestId >>> 0 === requestId, `request id must be a u32, got ${requestId}`);
  const w = new ByteWriter(FRAME_HEADER_BYTES + BODY_HEADER_BYTES + Math.max(16, sizeHint));
  w.reserve(FRAME_HEADER_BYTES);
  w.u8(kind).u32(requestId);
  writeMessage(w);
  const bodyLength = w.length - FRAME_HEADER_BYTES;
  const frame = w.finish();
  w.patchU32(0, bodyLength);
  w.patchU32(4, frameCrc(frame.subarray(FRAME_HEADER_BYTES)));
  return frame;
}

export function encodeRequestFrame(requestId: number, request: Request): Uint8Array {
  return encodeFrame(FrameKind.REQUEST, requestId, requestSizeHint(request), (w) => writeRequest(w, request));
}

/** `key` is the segment key of the request being answered; `records` responses need it. */
export function encodeResponseFrame(requestId: number, response: Response, key?: SegmentKey): Uint8Array {
  return encodeFrame(FrameKind.RESPONSE, requestId, responseSizeHint(response), (w) => writeResponse(w, response, key));
}

/** Body length of an encoded frame (for checking it against the peer's limit). */
export function frameBodyLength(frame: Uint8Array): number {
  return readU32(frame, 0);
}

// Size hints: generous upper estimates so that ByteWriter allocates once. Strings are counted at 3 bytes
// per UTF-16 unit (the UTF-8 worst case), records by their encoded bytes or payload plus a header.
const RECORD_HEADER_MAX = 4 + 1 + 6 * 8 + 3;

function recordsHint(records: readonly { bytes: Uint8Array; payload: Uint8Array }[]): number {
  let n = 8;
  for (const r of records) n += r.bytes.byteLength > 0 ? r.bytes.byteLength : r.payload.byteLength + RECORD_HEADER_MAX;
  return n;
}

function requestSizeHint(m: Request): number {
  const base = 64;
  switch (m.type) {
    case "hello": return base + 3 * m.senderId.length;
    case "writeBatch": return base + 3 * m.key.volumeId.length + recordsHint(m.records);
    case "openSegment": return base + 3 * m.geometry.volumeId.length;
    case "ping":
    case "nodeStatus": return 8;
    default: return base + 3 * m.key.volumeId.length;
  }
}

const SEGMENT_STATE_HINT = 12 * 9;

function responseSizeHint(m: Response): number {
  switch (m.type) {
    case "helloOk": return 48 + 3 * (m.nodeId.length + m.az.length);
    case "nodeStatus": {
      let n = 32 + 3 * (m.nodeId.length + m.az.length);
      for (const s of m.segments) n += SEGMENT_STATE_HINT + 3 * s.geometry.volumeId.length;
      return n;
    }
    case "page": return 24 + m.bytes.byteLength;
    case "segmentState": return SEGMENT_STATE_HINT + 3 * m.state.geometry.volumeId.length;
    case "records": return 16 + recordsHint(m.records);
    case "error": return 32 + 3 * m.message.length + 256;
    default: return 16;
  }
}

/**
 * Frames of one tick appended into one buffer, handed to `Connection.write` as one chunk: what the RPC
 * client and server send with. One allocation per tick rather than a buffer, a DataView and a Buffer
 * wrapper per frame (about 1.8 µs per small frame, most of a ping's cost), and one contiguous write
 * rather than a writev of hundreds of tiny iovecs.
 *
 * `append` is all-or-nothing: when the message cannot be encoded or its body exceeds `maxBodyBytes`,
 * it throws and the batch is left exactly as it was.
 */
export class FrameBatch {
  private w: ByteWriter | null = null;
  private count = 0;
  /** Sized from the previous batch so that a steady stream of batches rarely grows a buffer. */
  private nextCapacity = 4096;

  get frames(): number {
    return this.count;
  }

  get bytes(): number {
    return this.w?.length ?? 0;
  }

  append(kind: FrameKind, requestId: number, maxBodyBytes: number, writeMessage: (w: ByteWriter) => void): void {
    assert(requestId >>> 0 === requestId, `request id must be a u32, got ${requestId}`);
    const w = (this.w ??= new ByteWriter(this.nextCapacity));
    const start = w.length;
    try {
      w.reserve(FRAME_HEADER_BYTES);
      w.u8(kind).u32(requestId);
      writeMessage(w);
      const bodyLength = w.length - start - FRAME_HEADER_BYTES;
      if (bodyLength > maxBodyBytes) {
        throw new BorealisError("FRAME_TOO_LARGE", `frame of ${bodyLength} bytes exceeds the limit of ${maxBodyBytes}`, { length: bodyLength, limit: maxBodyBytes });
      }
      const all = w.finish();
      w.patchU32(start, bodyLength);
      w.patchU32(start + 4, frameCrc(all.subarray(start + FRAME_HEADER_BYTES)));
      this.count++;
    } catch (e) {
      this.rollback(start);
      throw e;
    }
  }

  /** The batch's bytes (null when empty); the batch starts over. */
  take(): Uint8Array | null {
    const w = this.w;
    this.w = null;
    this.count = 0;
    if (w === null || w.length === 0) return null;
    this.nextCapacity = Math.min(4 * 1024 * 1024, Math.max(4096, w.length + (w.length >> 2)));
    return w.finish();
  }

  /** ByteWriter cannot shrink: keep the frames before `start` in a fresh writer (rare: a refused frame). */
  private rollback(start: number): void {
    const kept = this.w!.finish().slice(0, start);
    this.w = new ByteWriter(Math.max(this.nextCapacity, kept.byteLength + 1024));
    this.w.bytes(kept);
  }
}
