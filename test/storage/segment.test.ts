import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { isBorealisError } from "../../src/core/errors.js";
import { Epoch, Lsn, PageNo } from "../../src/core/types.js";
import { Segment } from "../../src/storage/segment.js";
import { RecordFlag, encodeRecord, type EncodedRecord } from "../../src/wire/record.js";
import { ModelWriter, epochs1, geometry, modelScl, prng } from "./helpers.js";

const g = geometry("vol-s", 0, 1, 16, 512);

function chain(n: number, seed: number, skipEvery = 0): EncodedRecord[] {
  const w = new ModelWriter(g);
  const rand = prng(seed);
  for (let i = 0; i < n; i++) w.next(rand, 1 + rand.int(16), { skip: skipEvery > 0 && i % skipEvery === 0 ? 2 : 0 });
  return w.records;
}

function deliver(s: Segment, records: readonly EncodedRecord[], vdl = 0): void {
  const fresh = s.planWrite(records, s.epochs);
  s.join(fresh, Lsn(vdl), 1);
}

test("SCL follows the chain; records past a gap wait until it fills; duplicates are ignored", () => {
  const records = chain(6, 1, 2);
  const lsns = records.map((r) => r.lsn);
  const s = Segment.create(g, epochs1);
  deliver(s, [records[0]!]);
  assert.equal(s.scl, lsns[0]);
  deliver(s, [records[2]!, records[3]!]); // gap at records[1]
  assert.equal(s.scl, lsns[0]);
  assert.equal(s.highestLsn, lsns[3]);
  deliver(s, [records[3]!, records[0]!]); // duplicates
  assert.equal(s.heldCount, 3);
  deliver(s, [records[1]!]); // the gap fills
  assert.equal(s.scl, lsns[3]);
  deliver(s, [records[5]!]);
  assert.equal(s.scl, lsns[3]);
  deliver(s, [records[4]!]);
  assert.equal(s.scl, lsns[5]);
  assert.equal(s.heldCount, 6);
});

test("SCL matches a naive chain walk for any delivery order, batching and duplication (property)", () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 60 }),
    fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    fc.array(fc.nat(), { minLength: 1, maxLength: 200 }),
    fc.integer({ min: 1, max: 8 }),
    (n, seed, picks, batchSize) => {
      const records = chain(n, seed, 3);
      const s = Segment.create(g, epochs1);
      const delivered = new Map<number, EncodedRecord>();
      for (let i = 0; i < picks.length; i += batchSize) {
        const batch = picks.slice(i, i + batchSize).map((p) => records[p % records.length]!);
        deliver(s, batch);
        for (const r of batch) delivered.set(r.lsn, r);
        assert.equal(s.scl, modelScl([...delivered.values()]));
        assert.equal(s.highestLsn, Math.max(...delivered.keys()));
        assert.equal(s.heldCount, delivered.size);
      }
    }), { numRuns: 300 });
});

test("sorting stops at min(SCL, knownVdl) and the sorted point is always a chain tip", () => {
  const records = chain(10, 3, 2);
  const s = Segment.create(g, epochs1);
  deliver(s, records, records[4]!.lsn);
  assert.equal(s.sortBound, records[4]!.lsn);
  const take = s.takeSortable(1 << 20);
  assert.deepEqual(take.map((h) => h.record.lsn), records.slice(0, 5).map((r) => r.lsn));
  s.markSorted(records[4]!.lsn);
  assert.equal(s.materializedLsn, records[4]!.lsn);
  assert.equal(s.heldCount, 5);
  assert.throws(() => s.markSorted(Lsn(records[5]!.lsn + 1)));
  // A restart resumes the chain from the sorted point.
  const again = Segment.fromMeta(s.meta());
  assert.equal(again.scl, records[4]!.lsn);
  deliver(again, records.slice(3));
  assert.equal(again.scl, records[9]!.lsn);
  assert.equal(again.heldCount, 5, "records at or below the sorted point are not held twice");
});

test("stale epochs are refused with the segment's epoch; newer ones are refused until adopted", () => {
  const s = Segment.create(g, { volumeEpoch: Epoch(3), membershipEpoch: Epoch(2) });
  const records = chain(2, 5);
  const expect = (epochs: { volumeEpoch: number; membershipEpoch: number }, code: string, epoch?: number) => {
    assert.throws(() => s.planWrite(records, { volumeEpoch: Epoch(epochs.volumeEpoch), membershipEpoch: Epoch(epochs.membershipEpoch) }), (e) => {
      assert.ok(isBorealisError(e), String(e));
      assert.equal(e.code, code);
      if (epoch !== undefined) assert.equal(e.details.epoch, epoch);
      return true;
    });
  };
  expect({ volumeEpoch: 2, membershipEpoch: 2 }, "STALE_VOLUME_EPOCH", 3);
  expect({ volumeEpoch: 3, membershipEpoch: 1 }, "STALE_MEMBERSHIP_EPOCH", 2);
  expect({ volumeEpoch: 4, membershipEpoch: 2 }, "EPOCH_NOT_ADOPTED", 3);
  expect({ volumeEpoch: 3, membershipEpoch: 3 }, "EPOCH_NOT_ADOPTED", 3);
  s.adoptEpochs({ volumeEpoch: Epoch(4), membershipEpoch: Epoch(2) });
  // setEpoch fences the old writer but does not let the new one write: its annulment must come first.
  expect({ volumeEpoch: 4, membershipEpoch: 2 }, "EPOCH_NOT_ADOPTED", 4);
  s.applyAnnul({ volumeEpoch: Epoch(4), membershipEpoch: Epoch(2) }, [{ epoch: Epoch(4), aboveLsn: Lsn(100) }]);
  assert.equal(s.writableEpoch, 4);
  assert.deepEqual(s.planWrite(records, { volumeEpoch: Epoch(4), membershipEpoch: Epoch(2) }).length, 2);
  expect({ volumeEpoch: 3, membershipEpoch: 2 }, "STALE_VOLUME_EPOCH", 4);
  assert.throws(() => s.adoptEpochs({ volumeEpoch: Epoch(3), membershipEpoch: Epoch(9) }), (e) => isBorealisError(e, "STALE_VOLUME_EPOCH"));
});

test("records are validated: page range, epoch, payload shape", () => {
  const s = Segment.create(g, epochs1);
  const base = { lsn: Lsn(1), prevLsnInSegment: Lsn(0), prevLsnOfPage: Lsn(0), prevLsnInVolume: Lsn(0), flags: RecordFlag.CPL };
  const make = (over: Partial<Parameters<typeof encodeRecord>[0]>) => encodeRecord({ ...base, epoch: Epoch(1), pageNo: PageNo(1), payload: Uint8Array.of(1, 0, 1, 7), ...over }, { volumeId: g.volumeId, pgId: g.pgId });
  assert.throws(() => s.planWrite([make({ pageNo: PageNo(17) })], epochs1), (e) => isBorealisError(e, "PAGE_OUT_OF_RANGE"));
  assert.throws(() => s.planWrite([make({ epoch: Epoch(2) })], epochs1), (e) => isBorealisError(e, "INVALID_ARGUMENT"));
  assert.throws(() => s.planWrite([make({ flags: RecordFlag.FULL_IMAGE, payload: new Uint8Array(100) })], epochs1), (e) => isBorealisError(e, "INVALID_ARGUMENT"));
  assert.throws(() => s.planWrite([make({ payload: Uint8Array.of(1, 0xff, 3, 1, 2, 3) })], epochs1), (e) => isBorealisError(e, "INVALID_ARGUMENT"));
  assert.equal(s.planWrite([make({})], epochs1).length, 1);
});

test("annul drops older-epoch records above the LSN, pulls SCL back, and keeps dropping them", () => {
  const w = new ModelWriter(g);
  const rand = prng(9);
  for (let i = 0; i < 10; i++) w.next(rand, 1 + rand.int(16));
  const old = [...w.records];
  const s = Segment.create(g, epochs1);
  deliver(s, old, old[3]!.lsn);
  assert.equal(s.scl, old[9]!.lsn);
  const e2 = { volumeEpoch: Epoch(2), membershipEpoch: Epoch(1) };
  const removed = s.applyAnnul(e2, [{ epoch: Epoch(2), aboveLsn: old[5]!.lsn }]);
  assert.equal(removed.length, 4);
  assert.equal(s.scl, old[5]!.lsn);
  assert.equal(s.highestLsn, old[5]!.lsn);
  assert.deepEqual(s.epochs, e2);
  // The old writer's records arriving late (in a current batch) are dropped, not held.
  assert.equal(s.planWrite(old.slice(6), e2).length, 0);
  assert.equal(s.join(old.slice(6), Lsn(0), 1).kept, 0);
  // The new writer continues the chain from the annulment point, reusing the annulled LSNs.
  w.resetTo(old[5]!.lsn, old[5]!.lsn, Epoch(2));
  const fresh = [w.next(rand, 2), w.next(rand, 3)];
  assert.equal(fresh[0]!.lsn, old[6]!.lsn);
  deliver(s, fresh);
  assert.equal(s.scl, fresh[1]!.lsn);
  // A retried annulment changes nothing.
  assert.equal(s.applyAnnul(e2, [{ epoch: Epoch(2), aboveLsn: old[5]!.lsn }]).length, 0);
  assert.equal(s.scl, fresh[1]!.lsn);
  // The annulment is part of the durable metadata; a restarted segment applies it on replay.
  const restarted = Segment.fromMeta(s.meta({ materializedLsn: Lsn(0), retentionLsn: Lsn(0) }));
  restarted.join([...old, ...fresh], Lsn(0), 1);
  assert.equal(restarted.scl, fresh[1]!.lsn);
  assert.equal(restarted.heldCount, 8);
});

test("a segment that missed an annulment refuses the new epoch's records that collide with old ones", () => {
  const w = new ModelWriter(g);
  const rand = prng(12);
  for (let i = 0; i < 6; i++) w.next(rand, 1 + rand.int(16));
  const old = [...w.records];
  const s = Segment.create(g, epochs1);
  deliver(s, old);
  // setEpoch reached this segment, the annulment did not.
  const e2 = { volumeEpoch: Epoch(2), membershipEpoch: Epoch(1) };
  s.adoptEpochs(e2);
  w.resetTo(old[3]!.lsn, old[3]!.lsn, Epoch(2));
  const fresh = [w.next(rand, 5)];
  assert.throws(() => s.planWrite(fresh, e2), (e) => isBorealisError(e, "EPOCH_NOT_ADOPTED"));
  // Past SCL with a link behind it: the same verdict.
  w.resetTo(old[5]!.lsn + 100, old[3]!.lsn, Epoch(2));
  assert.throws(() => s.planWrite([w.next(rand, 5)], e2), (e) => isBorealisError(e, "EPOCH_NOT_ADOPTED"));
  // Once annulled, the same records are welcome.
  s.applyAnnul(e2, [{ epoch: Epoch(2), aboveLsn: old[3]!.lsn }]);
  assert.equal(s.planWrite(fresh, e2).length, 1);
});
