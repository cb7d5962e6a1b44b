/**
 * The engine's parts on their own: the shared buffer pool (version visibility, closing, conservative
 * validity of fetched versions, eviction only of durable versions, garbage first), the write lock
 * queue, transaction statement kinds, SQLite code names, and the MemoryVolume's contract checks.
 */
import { describe, it } from "node:test";
import fc from "fast-check";
import assert from "node:assert/strict";
import { AssertionError } from "../../src/core/assert.js";
import { Epoch, Lsn, PageNo, PgId } from "../../src/core/types.js";
import { BufferPool } from "../../src/compute/engine/buffer-pool.js";
import { SharedControl } from "../../src/compute/engine/shared-control.js";
import { extendedCodeName, primaryCodeName } from "../../src/compute/engine/sqlite-abi.js";
import { txKind } from "../../src/compute/engine/statement-kind.js";
import { WriteGate } from "../../src/compute/engine/write-gate.js";
import { MemoryVolume } from "../../src/compute/memory-volume.js";
import { SqliteError } from "../../src/compute/sql-engine.js";
import { RecordFlag } from "../../src/wire/record.js";
import { applyRedo, diffOrImage } from "../../src/wire/redo-payload.js";
import { pageDiffOrImage } from "../../src/compute/engine/page-diff.js";

const PS = 512;

function page(fill: number): Uint8Array {
  return new Uint8Array(PS).fill(fill);
}

function poolWith(slots: number, vdl = 0): { pool: BufferPool; control: SharedControl } {
  const control = SharedControl.create(4, vdl);
  return { pool: BufferPool.create(slots * PS, PS, control), control };
}

function readByte(pool: BufferPool, pageNo: number, at: number): number | null {
  const dst = new Uint8Array(PS);
  return pool.read(pageNo, at, dst, 0) < 0 ? null : dst[0]!;
}

describe("buffer pool", () => {
  it("serves each read point the version visible there", () => {
    const { pool } = poolWith(16);
    pool.publish([{ pageNo: 5, lsn: 10, bytes: page(1) }]);
    pool.publish([{ pageNo: 5, lsn: 20, bytes: page(2) }, { pageNo: 6, lsn: 21, bytes: page(3) }]);
    assert.equal(readByte(pool, 5, 9), null, "nothing before the first version");
    assert.equal(readByte(pool, 5, 10), 1);
    assert.equal(readByte(pool, 5, 19), 1, "the old version is closed at the next one's LSN - 1");
    assert.equal(readByte(pool, 5, 20), 2);
    assert.equal(readByte(pool, 5, 1e9), 2, "the newest version stays open");
    assert.equal(readByte(pool, 6, 20), null);
    assert.equal(readByte(pool, 6, 21), 3);
  });

  it("keeps a fetched version open only when the page was not written after the fetch", () => {
    const { pool, control } = poolWith(16);
    control.publishVdl(30);
    pool.insertFetched(7, 4, 30, page(7)); // never written by this writer: open
    assert.equal(readByte(pool, 7, 1000), 7);
    pool.publish([{ pageNo: 8, lsn: 40, bytes: page(8) }]);
    pool.insertFetched(8, 3, 30, page(9)); // written at 40 after the fetch at 30: valid only up to 30
    assert.equal(readByte(pool, 8, 30), 9);
    assert.equal(readByte(pool, 8, 35), null);
    assert.equal(readByte(pool, 8, 40), 8);
    pool.insertFetched(7, 4, 30, page(99)); // already cached there: ignored
    assert.equal(readByte(pool, 7, 30), 7);
    assert.throws(() => pool.insertFetched(9, 31, 30, page(1)), AssertionError, "a version above its read point is refused (invariant 7)");
  });

  it("evicts only versions at or below VDL, garbage first", () => {
    const { pool, control } = poolWith(16, 0);
    // 16 slots: fill them with versions above VDL, then ask for one more.
    pool.publish(Array.from({ length: 16 }, (_, i) => ({ pageNo: i + 1, lsn: i + 1, bytes: page(i) })));
    assert.throws(() => pool.publish([{ pageNo: 100, lsn: 17, bytes: page(0) }]), AssertionError, "nothing durable to evict");
    control.publishVdl(16);
    // Page 1 gets a newer version: its old one is garbage (no read point below 17 in use).
    pool.publish([{ pageNo: 1, lsn: 17, bytes: page(50) }]);
    assert.equal(readByte(pool, 1, 17), 50);
    assert.equal(pool.stats().evictions, 1);
    control.setReadPoint(0, 5);
    pool.insertFetched(200, 1, 16, page(60));
    assert.equal(readByte(pool, 200, 16), 60);
    assert.equal(readByte(pool, 5, 16), 4, "the rest of the pool survives");
    assert.throws(() => pool.assertFitsLal(9), AssertionError);
    pool.assertFitsLal(8);
  });
});

describe("page diff", () => {
  it("produces exactly the reference encoding (redo-payload.ts)", () => {
    const edits = fc.array(fc.tuple(fc.nat(PS - 1), fc.integer({ min: 1, max: 40 }), fc.nat(255)), { maxLength: 30 });
    // All-0xff pages are NaN as float64 words: the word compare must not be fooled.
    const pages = fc.oneof(fc.uint8Array({ minLength: PS, maxLength: PS }), fc.constant(new Uint8Array(PS).fill(0xff)));
    fc.assert(fc.property(pages, edits, fc.nat(7), (base, changes, shift) => {
      const before = base;
      const after = base.slice();
      for (const [at, len, value] of changes) after.fill(value, at, Math.min(PS, at + len));
      // Unaligned views take the byte path; aligned ones the word path.
      const buf = new Uint8Array(PS + 8);
      buf.set(after, shift);
      const view = buf.subarray(shift, shift + PS);
      for (const a of [after, view]) {
        const ours = pageDiffOrImage(before, a, RecordFlag.FULL_IMAGE);
        const ref = diffOrImage(before, a, RecordFlag.FULL_IMAGE);
        assert.deepEqual(ours === null ? null : { flags: ours.flags, payload: [...ours.payload] }, ref === null ? null : { flags: ref.flags, payload: [...ref.payload] });
        if (ours !== null) {
          const page = before.slice();
          applyRedo(page, { ...ours, lsn: Lsn(1) });
          assert.deepEqual(page, after);
        }
      }
    }), { numRuns: 2000 });
  });
});

describe("write gate", () => {
  it("shares among autocommit writes, excludes transactions, FIFO, with a timeout", async () => {
    const gate = new WriteGate(4);
    const a = {}, b = {}, c = {};
    await gate.acquire("shared", a, 100);
    await gate.acquire("shared", b, 100);
    let exclusive = false;
    const x = gate.acquire("exclusive", c, 1000).then(() => (exclusive = true));
    let late = false;
    const y = gate.acquire("shared", a, 1000).then(() => (late = true));
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(exclusive, false);
    gate.release("shared", a);
    gate.release("shared", b);
    await x;
    assert.equal(late, false, "a shared request behind a waiting exclusive one waits");
    await gate.acquire("exclusive", c, 10); // re-entrant for its owner
    await assert.rejects(gate.acquire("exclusive", b, 20), (e: unknown) => e instanceof SqliteError && e.extendedCode === "SQLITE_BUSY_TIMEOUT");
    gate.release("exclusive", c);
    await y;
    gate.release("shared", a);
    assert.deepEqual(gate.holders, { shared: 0, exclusive: false, waiting: 0 });
  });
});

describe("statement kinds and codes", () => {
  it("recognises transaction openers through comments", () => {
    assert.equal(txKind("BEGIN"), "begin-deferred");
    assert.equal(txKind("  -- hi\n begin transaction;"), "begin-deferred");
    assert.equal(txKind("/* x */ BEGIN IMMEDIATE"), "begin-immediate");
    assert.equal(txKind("begin exclusive transaction"), "begin-exclusive");
    assert.equal(txKind("BEGIN TRANSACTION READONLY"), "begin-readonly");
    assert.equal(txKind("begin readonly;"), "begin-readonly");
    assert.equal(txKind("SAVEPOINT a"), "savepoint");
    assert.equal(txKind("BEGINNING"), "other");
    assert.equal(txKind("SELECT 'BEGIN'"), "other");
    assert.equal(txKind("COMMIT"), "other");
  });

  it("names SQLite result codes", () => {
    assert.equal(primaryCodeName(19), "SQLITE_CONSTRAINT");
    assert.equal(extendedCodeName(1555), "SQLITE_CONSTRAINT_PRIMARYKEY");
    assert.equal(extendedCodeName(2067), "SQLITE_CONSTRAINT_UNIQUE");
    assert.equal(extendedCodeName(517), "SQLITE_BUSY_SNAPSHOT");
    assert.equal(extendedCodeName(5), "SQLITE_BUSY");
    assert.equal(extendedCodeName(522), "SQLITE_IOERR_SHORT_READ");
  });
});

describe("MemoryVolume", () => {
  const rec = (lsn: number, pageNo: number, prev: { seg: number; page: number; vol: number }, cpl: boolean, payload = new Uint8Array([1, 0, 1, 42])) => ({
    pgId: PgId(Math.floor((pageNo - 1) / 4)),
    record: {
      lsn: Lsn(lsn), epoch: Epoch(1), pageNo: PageNo(pageNo), prevLsnInSegment: Lsn(prev.seg), prevLsnOfPage: Lsn(prev.page),
      prevLsnInVolume: Lsn(prev.vol), flags: cpl ? RecordFlag.CPL : 0, payload,
    },
  });

  it("materializes pages from records and checks the writer's contract", async () => {
    const v = new MemoryVolume({ pageSize: PS, pgPages: 4, durability: "manual" });
    v.submit({ epoch: Epoch(1), firstLsn: Lsn(1), commitLsn: Lsn(2), records: [rec(1, 1, { seg: 0, page: 0, vol: 0 }, false), rec(2, 5, { seg: 0, page: 0, vol: 1 }, true)] });
    assert.equal(v.vdl(), 0);
    let durable = false;
    const w = v.whenDurable(Lsn(2)).then(() => (durable = true));
    assert.equal((await v.readPage(PageNo(1), Lsn(2))).bytes[0], 42, "a reader at the LSN sees the materialized page");
    assert.equal((await v.readPage(PageNo(1), Lsn(0))).pageLsn, 0);
    v.advanceVdl();
    await w;
    assert.equal(durable, true);
    // Wrong page backlink: page 1's last record is LSN 1.
    assert.throws(() => v.submit({ epoch: Epoch(1), firstLsn: Lsn(3), commitLsn: Lsn(3), records: [rec(3, 1, { seg: 1, page: 0, vol: 2 }, true)] }), AssertionError);
    // A gap in LSNs within an MTR.
    assert.throws(() => v.submit({ epoch: Epoch(1), firstLsn: Lsn(3), commitLsn: Lsn(5), records: [rec(3, 2, { seg: 1, page: 0, vol: 2 }, false), rec(5, 3, { seg: 3, page: 0, vol: 3 }, true)] }), AssertionError);
    // CPL not last.
    assert.throws(() => v.submit({ epoch: Epoch(1), firstLsn: Lsn(3), commitLsn: Lsn(3), records: [rec(3, 2, { seg: 1, page: 0, vol: 2 }, false)] }), AssertionError);
  });
});
