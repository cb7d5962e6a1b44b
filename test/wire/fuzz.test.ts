/**
 * Fuzzes a real RpcServer on 127.0.0.1: each case opens a connection, sends bytes that are partly or
 * wholly garbage, and expects the server to answer with an error response and close that connection —
 * never to crash, hang, or stop serving others. Inputs are built from complete frames (whatever their
 * contents) followed by a trailer that is always invalid, so that every case ends in a decision rather
 * than in the server waiting for the rest of a frame (which the slowloris test covers).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { crc32c } from "../../src/core/checksum.js";
import { FRAME_HEADER_BYTES, FrameKind, encodeRequestFrame } from "../../src/wire/frame.js";
import { RpcClient } from "../../src/wire/rpc-client.js";
import { RawConnection, arbRequest, env, frameAround, startServer } from "./helpers.js";

const STREAM_CODES = new Set(["PROTOCOL_ERROR", "FRAME_TOO_LARGE", "CHECKSUM_MISMATCH", "UNSUPPORTED_VERSION"]);

function header(length: number, crc: number): Uint8Array {
  const h = new Uint8Array(FRAME_HEADER_BYTES);
  const v = new DataView(h.buffer);
  v.setUint32(0, length, true);
  v.setUint32(4, crc, true);
  return h;
}

const HELLO = encodeRequestFrame(1, { type: "hello", minVersion: 1, maxVersion: 1, role: "writer", senderId: "fuzz", maxFrameBytes: 1 << 20 });

/** One piece of input: each is a complete frame or a header the server rejects from its length alone. */
const arbPiece: fc.Arbitrary<Uint8Array> = fc.oneof(
  // A declared length above the server's limit (the same before and after hello in this test).
  fc.integer({ min: 64 * 1024 + 1, max: 0xffff_ffff }).map((n) => header(n, 0)),
  // A length too small to hold a body header.
  fc.integer({ min: 0, max: 4 }).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => {
    const out = new Uint8Array(FRAME_HEADER_BYTES + n);
    out.set(header(n, crc32c(b)));
    out.set(b, FRAME_HEADER_BYTES);
    return out;
  })),
  // Random body, random checksum.
  fc.tuple(fc.uint8Array({ minLength: 5, maxLength: 200 }), fc.integer({ min: 0, max: 0xffff_ffff })).map(([b, crc]) => {
    const out = new Uint8Array(FRAME_HEADER_BYTES + b.byteLength);
    out.set(header(b.byteLength, crc));
    out.set(b, FRAME_HEADER_BYTES);
    return out;
  }),
  // Random message in a valid frame of either kind: exercises the message decoder.
  fc.tuple(fc.constantFrom(0, 1, 2, 255), fc.integer({ min: 0, max: 0xffff_ffff }), fc.uint8Array({ maxLength: 200 }))
    .map(([kind, id, msg]) => frameAround(kind, id, msg)),
  // Random message starting with a real request tag: gets further into each decoder.
  fc.tuple(fc.integer({ min: 1, max: 10 }), fc.uint8Array({ maxLength: 120 }))
    .map(([tag, rest]) => frameAround(FrameKind.REQUEST, 77, Uint8Array.of(tag, ...rest))),
  // A valid request with one body byte flipped (the header is left alone so the frame stays complete).
  fc.tuple(arbRequest, fc.nat(), fc.integer({ min: 1, max: 255 })).map(([req, at, x]) => {
    const f = encodeRequestFrame(5, req).slice();
    const i = FRAME_HEADER_BYTES + (at % (f.byteLength - FRAME_HEADER_BYTES));
    f[i]! ^= x;
    return f;
  }),
  // Perfectly valid frames, hello included, so that garbage also arrives after a handshake.
  fc.constant(HELLO),
  arbRequest.map((req) => encodeRequestFrame(9, req)),
);

/** Always invalid wherever it lands (at a frame boundary): a body length of 0. */
const TRAILER = header(0, 0);

test("random frames to a real server: error response, connection closed, server still serves", async () => {
  const { server, address } = await startServer({ maxFrameBytes: 64 * 1024, maxInFlight: 8, helloTimeoutMs: 5000, partialFrameTimeoutMs: 5000 });
  let cases = 0;
  try {
    await fc.assert(fc.asyncProperty(fc.boolean(), fc.array(arbPiece, { minLength: 1, maxLength: 4 }), async (hello, pieces) => {
      cases++;
      const raw = await RawConnection.open(address);
      try {
        raw.write([...(hello ? [HELLO] : []), ...pieces, TRAILER]);
        await raw.waitClosed(3000);
        assert.equal(raw.decodeError, null, "the server's own frames decode");
        assert.ok(raw.frames.length >= 1, "an error response before the close");
        const last = raw.frames[raw.frames.length - 1]!;
        assert.equal(last.kind, FrameKind.RESPONSE);
        const r = raw.response(raw.frames.length - 1);
        assert.ok(r.type === "error" && STREAM_CODES.has(r.code), `last answer was ${JSON.stringify(r)}`);
      } finally {
        raw.destroy();
      }
    }), { numRuns: 2000, seed: 20260101 });
    assert.equal(cases, 2000);

    for (let i = 0; i < 50 && server.connectionCount > 0; i++) await env.clock.sleep(10);
    assert.equal(server.connectionCount, 0, "every fuzzed connection was released");
    const client = await RpcClient.connect(env, address, { role: "admin", senderId: "after-fuzz" });
    assert.equal((await client.request({ type: "ping" })).type, "pong");
    client.close();
  } finally {
    await server.close();
  }
});
