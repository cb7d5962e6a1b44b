import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { BorealisError, ErrorCodes, isBorealisError, type ErrorCode } from "../../src/core/errors.js";
import { Epoch, Lsn, PageNo, PgId, VolumeId } from "../../src/core/types.js";
import { ByteReader, ByteWriter } from "../../src/wire/bytes.js";
import { FrameDecoder, FrameKind, encodeRequestFrame, encodeResponseFrame, type Frame } from "../../src/wire/frame.js";
import {
  errorFromResponse, errorResponse, readRequest, readResponse, writeRequest, writeResponse, type Request, type RequestType, type ResponseType,
} from "../../src/wire/messages.js";
import { EXPECTED_RESPONSE } from "../../src/wire/rpc-common.js";
import { arbRequest, arbResponse, makeRecords, plain } from "./helpers.js";

function decodeOne(frame: Uint8Array): Frame {
  const frames: Frame[] = [];
  new FrameDecoder({ maxFrameBytes: 16 * 1024 * 1024 }).push(frame, (f) => frames.push(f));
  assert.equal(frames.length, 1);
  return frames[0]!;
}

test("every request type round-trips through its codec and a frame (property)", () => {
  const seen = new Set<RequestType>();
  fc.assert(fc.property(arbRequest, fc.integer({ min: 1, max: 0xffff_ffff }), (req, id) => {
    seen.add(req.type);
    const w = new ByteWriter();
    writeRequest(w, req);
    const bytes = w.finish();
    assert.deepEqual(plain(readRequest(new ByteReader(bytes), bytes)), plain(req));

    const f = decodeOne(encodeRequestFrame(id, req));
    assert.equal(f.kind, FrameKind.REQUEST);
    assert.equal(f.requestId, id);
    assert.deepEqual(plain(readRequest(new ByteReader(f.message), f.message)), plain(req));
  }), { numRuns: 2000 });
  assert.equal(seen.size, Object.keys(EXPECTED_RESPONSE).length, `covered ${[...seen].join(", ")}`);
});

test("every response type round-trips through its codec and a frame (property)", () => {
  const seen = new Set<ResponseType>();
  fc.assert(fc.property(arbResponse, fc.integer({ min: 0, max: 0xffff_ffff }), ({ response, key }, id) => {
    seen.add(response.type);
    const w = new ByteWriter();
    writeResponse(w, response, key);
    const bytes = w.finish();
    assert.deepEqual(plain(readResponse(new ByteReader(bytes), bytes, key)), plain(response));

    const f = decodeOne(encodeResponseFrame(id, response, key));
    assert.equal(f.kind, FrameKind.RESPONSE);
    assert.equal(f.requestId, id);
    assert.deepEqual(plain(readResponse(new ByteReader(f.message), f.message, key)), plain(response));
  }), { numRuns: 2000 });
  assert.equal(seen.size, 8, `covered ${[...seen].join(", ")}`);
});

test("every truncation of a message is a PROTOCOL_ERROR, never a RangeError", () => {
  fc.assert(fc.property(arbRequest, (req) => {
    const w = new ByteWriter();
    writeRequest(w, req);
    const bytes = w.finish();
    for (let n = 0; n < bytes.byteLength; n++) {
      const cut = bytes.slice(0, n);
      assert.throws(() => readRequest(new ByteReader(cut), cut), (e) => isBorealisError(e), `cut at ${n} of ${req.type}`);
    }
  }), { numRuns: 300 });
});

test("trailing bytes after a message are refused", () => {
  const w = new ByteWriter();
  writeRequest(w, { type: "ping" });
  w.u8(0);
  const bytes = w.finish();
  assert.throws(() => readRequest(new ByteReader(bytes), bytes), (e) => isBorealisError(e, "PROTOCOL_ERROR"));
});

test("records in a batch are checksummed under the batch's segment key", () => {
  const key = { volumeId: VolumeId("v"), pgId: PgId(1) };
  const req: Request = { type: "writeBatch", key, epochs: { volumeEpoch: Epoch(1), membershipEpoch: Epoch(1) }, writerVdl: Lsn(0), records: makeRecords(key, 1, 3) };
  const w = new ByteWriter();
  writeRequest(w, req);
  const bytes = w.finish();
  // Re-label the batch as PG 2 (same encoded length): every record now fails its checksum (invariant 9).
  const relabelled = bytes.slice();
  const at = 1 + 1 + 1; // tag, volume id length, "v"
  assert.equal(relabelled[at], 1);
  relabelled[at] = 2;
  assert.throws(() => readRequest(new ByteReader(relabelled), relabelled), (e) => isBorealisError(e, "CHECKSUM_MISMATCH"));
});

test("a records response cannot be encoded or decoded without its key", () => {
  assert.throws(() => writeResponse(new ByteWriter(), { type: "records", scl: Lsn(0), more: false, records: [] }), (e) => isBorealisError(e, "INTERNAL"));
});

test("errors keep their code and details across the wire; unknown wire codes become INTERNAL", () => {
  for (const code of Object.keys(ErrorCodes) as ErrorCode[]) {
    const e = new BorealisError(code, `msg ${code}`, { scl: 12 });
    const w = new ByteWriter();
    writeResponse(w, errorResponse(e));
    const bytes = w.finish();
    const back = readResponse(new ByteReader(bytes), bytes);
    assert.equal(back.type, "error");
    if (back.type !== "error") return;
    const again = errorFromResponse(back);
    assert.equal(again.code, code);
    assert.equal(again.message, `msg ${code}`);
    assert.equal(again.details.scl, 12);
  }
  assert.equal(errorResponse(new Error("boom")).code, "INTERNAL");
  const w = new ByteWriter().u8(127).varint(4242).string("?").string("{}");
  const bytes = w.finish();
  const r = readResponse(new ByteReader(bytes), bytes);
  assert.equal(r.type === "error" && r.code, "INTERNAL");
});

test("a node status with many minimal segment states decodes (smallest encodings)", () => {
  const state = {
    geometry: { volumeId: VolumeId(""), pgId: PgId(0), firstPage: PageNo(0), pageCount: 0, pageSize: 0 },
    epochs: { volumeEpoch: Epoch(0), membershipEpoch: Epoch(0) },
    scl: Lsn(0), highestLsn: Lsn(0), knownVdl: Lsn(0), materializedLsn: Lsn(0), retentionLsn: Lsn(0),
    highestPageNo: PageNo(0),
  };
  const m = { type: "nodeStatus" as const, nodeId: "", az: "", fenced: false, segments: Array.from({ length: 50 }, () => state) };
  const w = new ByteWriter();
  writeResponse(w, m);
  const bytes = w.finish();
  assert.deepEqual(plain(readResponse(new ByteReader(bytes), bytes)), plain(m));
});
