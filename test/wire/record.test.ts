import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Epoch, Lsn, PageNo, PgId, VolumeId } from "../../src/core/types.js";
import { isBorealisError } from "../../src/core/errors.js";
import { RecordFlag, decodeRecord, encodeRecord, type RedoRecord } from "../../src/wire/record.js";
import { applyRedo, diffOrImage, encodePageDiff } from "../../src/wire/redo-payload.js";

const key = { volumeId: VolumeId("vol-a"), pgId: PgId(2) };

function sample(overrides: Partial<RedoRecord> = {}): RedoRecord {
  return {
    lsn: Lsn(1000), epoch: Epoch(3), pageNo: PageNo(7), prevLsnInSegment: Lsn(990),
    prevLsnOfPage: Lsn(500), prevLsnInVolume: Lsn(999), flags: RecordFlag.CPL,
    payload: new Uint8Array([1, 2, 3]), ...overrides,
  };
}

test("a record round-trips and its header is small", () => {
  const enc = encodeRecord(sample(), key);
  const dec = decodeRecord(enc.bytes, key);
  assert.equal(dec.lsn, 1000);
  assert.equal(dec.prevLsnInSegment, 990);
  assert.equal(dec.prevLsnOfPage, 500);
  assert.equal(dec.prevLsnInVolume, 999);
  assert.equal(dec.epoch, 3);
  assert.equal(dec.pageNo, 7);
  assert.deepEqual([...dec.payload], [1, 2, 3]);
  assert.ok(enc.bytes.byteLength - 3 <= 20, `header is ${enc.bytes.byteLength - 3} bytes`);
});

test("every flipped bit of a record is detected", () => {
  const enc = encodeRecord(sample(), key);
  for (let bit = 0; bit < enc.bytes.byteLength * 8; bit++) {
    const copy = enc.bytes.slice();
    copy[bit >> 3]! ^= 1 << (bit & 7);
    assert.throws(() => decodeRecord(copy, key), (e) => isBorealisError(e), `bit ${bit}`);
  }
});

test("a record under another volume or PG fails its checksum", () => {
  const enc = encodeRecord(sample(), key);
  assert.throws(() => decodeRecord(enc.bytes, { ...key, pgId: PgId(3) }), (e) => isBorealisError(e, "CHECKSUM_MISMATCH"));
  assert.throws(() => decodeRecord(enc.bytes, { ...key, volumeId: VolumeId("vol-b") }), (e) => isBorealisError(e, "CHECKSUM_MISMATCH"));
});

test("diffs reproduce the new page exactly (property)", () => {
  fc.assert(fc.property(
    fc.uint8Array({ minLength: 512, maxLength: 512 }),
    fc.array(fc.tuple(fc.nat(511), fc.integer({ min: 0, max: 255 })), { maxLength: 40 }),
    (before, edits) => {
      const after = before.slice();
      for (const [at, v] of edits) after[at] = v;
      const p = diffOrImage(before, after, RecordFlag.FULL_IMAGE);
      const page = before.slice();
      if (p !== null) applyRedo(page, { lsn: Lsn(1), ...p });
      assert.deepEqual(page, after);
    }));
});

test("a diff that writes outside the page is refused", () => {
  const before = new Uint8Array(64);
  const after = before.slice();
  after[63] = 9;
  const diff = encodePageDiff(before, after)!;
  assert.throws(() => applyRedo(new Uint8Array(32), { lsn: Lsn(1), flags: 0, payload: diff }), (e) => isBorealisError(e, "PROTOCOL_ERROR"));
});
