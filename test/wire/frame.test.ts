import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { isBorealisError } from "../../src/core/errors.js";
import { crc32c } from "../../src/core/checksum.js";
import { ByteReader } from "../../src/wire/bytes.js";
import {
  FRAME_HEADER_BYTES, FrameBatch, FrameDecoder, FrameKind, MAX_MAX_FRAME_BYTES, encodeRequestFrame, frameCrc, type Frame,
} from "../../src/wire/frame.js";
import { readRequest, type Request } from "../../src/wire/messages.js";
import { arbRequest, frameAround, plain } from "./helpers.js";

const MiB = 1024 * 1024;

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

function decodeAll(decoder: FrameDecoder, chunks: readonly Uint8Array[]): Frame[] {
  const frames: Frame[] = [];
  for (const c of chunks) decoder.push(c, (f) => frames.push(f));
  return frames;
}

function requests(frames: readonly Frame[]): unknown[] {
  return frames.map((f) => plain({ id: f.requestId, req: readRequest(new ByteReader(f.message), f.message) }));
}

const arbBatch = fc.array(arbRequest, { minLength: 1, maxLength: 12 });

test("frames fed one byte at a time come out whole and in order", () => {
  fc.assert(fc.property(arbBatch, (reqs) => {
    const stream = concat(reqs.map((r, i) => encodeRequestFrame(i + 1, r)));
    const decoder = new FrameDecoder({ maxFrameBytes: 16 * MiB });
    const chunks = Array.from({ length: stream.byteLength }, (_, i) => stream.subarray(i, i + 1));
    const frames = decodeAll(decoder, chunks);
    assert.deepEqual(requests(frames), reqs.map((r, i) => plain({ id: i + 1, req: r })));
    assert.equal(decoder.hasPartialFrame, false);
    assert.equal(decoder.bufferedBytes, 0);
  }), { numRuns: 200 });
});

test("frames split at random points come out whole and in order (property)", () => {
  fc.assert(fc.property(arbBatch, fc.array(fc.nat(), { maxLength: 30 }), (reqs, cuts) => {
    const stream = concat(reqs.map((r, i) => encodeRequestFrame(i + 1, r)));
    const points = [...new Set(cuts.map((c) => c % (stream.byteLength + 1)))].sort((a, b) => a - b);
    const chunks: Uint8Array[] = [];
    let last = 0;
    for (const p of [...points, stream.byteLength]) {
      chunks.push(stream.subarray(last, p));
      last = p;
    }
    const frames = decodeAll(new FrameDecoder({ maxFrameBytes: 16 * MiB }), chunks);
    assert.deepEqual(requests(frames), reqs.map((r, i) => plain({ id: i + 1, req: r })));
  }), { numRuns: 1000 });
});

test("whole frames in one chunk are handed out as views, not copies", () => {
  const reqs: Request[] = [{ type: "ping" }, { type: "nodeStatus" }, { type: "ping" }];
  const chunk = concat(reqs.map((r, i) => encodeRequestFrame(i + 1, r)));
  const frames = decodeAll(new FrameDecoder({ maxFrameBytes: 16 * MiB }), [chunk]);
  assert.equal(frames.length, 3);
  for (const f of frames) assert.equal(f.message.buffer, chunk.buffer);
});

test("a declared length above the limit is refused from the header alone, before allocating", () => {
  const decoder = new FrameDecoder({ maxFrameBytes: 16 * MiB });
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  new DataView(header.buffer).setUint32(0, 0xffff_fff0, true);
  global.gc?.();
  const before = process.memoryUsage();
  assert.throws(() => decoder.push(header, () => assert.fail("no frame")), (e) => isBorealisError(e, "FRAME_TOO_LARGE"));
  const after = process.memoryUsage();
  assert.ok(after.arrayBuffers - before.arrayBuffers < 1 * MiB, `arrayBuffers grew by ${after.arrayBuffers - before.arrayBuffers}`);
  // The decoder stays failed: the stream is out of sync for good.
  assert.throws(() => decoder.push(new Uint8Array(1), () => {}), (e) => isBorealisError(e, "FRAME_TOO_LARGE"));
});

test("a frame under the limit costs the bytes received, not the bytes declared", () => {
  const decoder = new FrameDecoder({ maxFrameBytes: MAX_MAX_FRAME_BYTES });
  const header = new Uint8Array(FRAME_HEADER_BYTES + 1024);
  new DataView(header.buffer).setUint32(0, MAX_MAX_FRAME_BYTES, true);
  const before = process.memoryUsage();
  decoder.push(header, () => assert.fail("no frame yet"));
  const after = process.memoryUsage();
  assert.equal(decoder.bufferedBytes, 1024);
  assert.ok(decoder.hasPartialFrame);
  const grew = (after.arrayBuffers - before.arrayBuffers) + (after.heapUsed - before.heapUsed);
  assert.ok(grew < 64 * MiB, `memory grew by ${grew} for a 1 GiB claim`);
});

test("a corrupted frame is a CHECKSUM_MISMATCH, and frames before it are still delivered", () => {
  fc.assert(fc.property(arbRequest, fc.nat(), fc.integer({ min: 0, max: 7 }), (req, at, bit) => {
    const good = encodeRequestFrame(1, { type: "ping" });
    const bad = encodeRequestFrame(2, req).slice();
    const i = FRAME_HEADER_BYTES + (at % (bad.byteLength - FRAME_HEADER_BYTES));
    bad[i]! ^= 1 << bit;
    const frames: Frame[] = [];
    const decoder = new FrameDecoder({ maxFrameBytes: 16 * MiB });
    assert.throws(() => decoder.push(concat([good, bad]), (f) => frames.push(f)), (e) => isBorealisError(e, "CHECKSUM_MISMATCH"));
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.requestId, 1);
  }), { numRuns: 500 });
});

test("a corrupted checksum field is a CHECKSUM_MISMATCH", () => {
  const frame = encodeRequestFrame(1, { type: "ping" }).slice();
  frame[5]! ^= 0x10;
  assert.throws(() => decodeAll(new FrameDecoder({ maxFrameBytes: 16 * MiB }), [frame]), (e) => isBorealisError(e, "CHECKSUM_MISMATCH"));
});

test("a body too short for its header, or of an unknown kind, is a PROTOCOL_ERROR", () => {
  const short = new Uint8Array(FRAME_HEADER_BYTES + 4);
  new DataView(short.buffer).setUint32(0, 4, true);
  new DataView(short.buffer).setUint32(4, crc32c(short.subarray(8)), true);
  assert.throws(() => decodeAll(new FrameDecoder({ maxFrameBytes: 16 * MiB }), [short]), (e) => isBorealisError(e, "PROTOCOL_ERROR"));
  const kind7 = frameAround(7, 1, new Uint8Array([2]));
  assert.throws(() => decodeAll(new FrameDecoder({ maxFrameBytes: 16 * MiB }), [kind7]), (e) => isBorealisError(e, "PROTOCOL_ERROR"));
  const response = frameAround(FrameKind.RESPONSE, 9, new Uint8Array([65]));
  const [f] = decodeAll(new FrameDecoder({ maxFrameBytes: 16 * MiB }), [response]);
  assert.equal(f!.kind, FrameKind.RESPONSE);
  assert.equal(f!.requestId, 9);
});

test("raising the limit inside onFrame applies to the next frame of the same chunk", () => {
  const big = new Uint8Array(10_000);
  const chunk = concat([frameAround(0, 1, new Uint8Array([2])), frameAround(0, 2, big)]);
  const strict = new FrameDecoder({ maxFrameBytes: 4096 });
  assert.throws(() => decodeAll(strict, [chunk]), (e) => isBorealisError(e, "FRAME_TOO_LARGE"));
  const raised = new FrameDecoder({ maxFrameBytes: 4096 });
  const frames: Frame[] = [];
  raised.push(chunk, (f) => {
    frames.push(f);
    raised.maxFrameBytes = 16 * MiB;
  });
  assert.equal(frames.length, 2);
  assert.equal(frames[1]!.message.byteLength, big.byteLength);
});

test("random bytes never escape as anything but a BorealisError", () => {
  fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), (chunks) => {
    const decoder = new FrameDecoder({ maxFrameBytes: 4096 });
    try {
      decodeAll(decoder, chunks);
    } catch (e) {
      assert.ok(isBorealisError(e), String(e));
    }
  }), { numRuns: 2000 });
});

test("the frame checksum's small-input path agrees with the native CRC32C (property)", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
    assert.equal(frameCrc(bytes), crc32c(bytes));
  }), { numRuns: 5000 });
});

test("a frame batch is all-or-nothing: a refused frame leaves the frames before it intact", () => {
  const batch = new FrameBatch();
  batch.append(FrameKind.REQUEST, 1, 4096, (w) => w.u8(2));
  assert.throws(() => batch.append(FrameKind.REQUEST, 2, 4096, (w) => w.bytes(new Uint8Array(5000))), (e) => isBorealisError(e, "FRAME_TOO_LARGE"));
  assert.throws(() => batch.append(FrameKind.REQUEST, 3, 4096, (w) => { w.u8(2); throw new RangeError("half-written"); }), RangeError);
  batch.append(FrameKind.REQUEST, 4, 4096, (w) => w.u8(3));
  assert.equal(batch.frames, 2);
  const frames = decodeAll(new FrameDecoder({ maxFrameBytes: 16 * MiB }), [batch.take()!]);
  assert.deepEqual(frames.map((f) => [f.requestId, [...f.message]]), [[1, [2]], [4, [3]]]);
  assert.equal(batch.take(), null);
});
