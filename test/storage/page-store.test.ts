import { test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { isBorealisError } from "../../src/core/errors.js";
import { Epoch, Lsn, PageNo, PgId } from "../../src/core/types.js";
import { LmdbPageStore, MemoryPageStore, type PageStore } from "../../src/storage/page-store.js";
import type { SegmentMeta } from "../../src/storage/segment.js";
import { ModelWriter, epochs1, geometry, keyOf, prng, tempDir } from "./helpers.js";

const g = geometry("vol-p", 3, 1, 8, 512);
const key = keyOf(g);

function meta(over: Partial<SegmentMeta> = {}): SegmentMeta {
  return { geometry: g, epochs: epochs1, knownVdl: Lsn(0), materializedLsn: Lsn(0), retentionLsn: Lsn(0), annulments: [], highestPageNo: 0, writableEpoch: epochs1.volumeEpoch, ...over };
}

async function withStores(fn: (store: PageStore & { flipStoredBit: LmdbPageStore["flipStoredBit"] }, reopen: () => Promise<PageStore>) => Promise<void>): Promise<void> {
  const { dir, cleanup } = await tempDir();
  try {
    let lmdb = LmdbPageStore.open(path.join(dir, "pages"));
    await fn(lmdb, async () => {
      await lmdb.close();
      lmdb = LmdbPageStore.open(path.join(dir, "pages"));
      return lmdb;
    });
    await lmdb.close();
    let memory = new MemoryPageStore();
    await fn(memory, async () => {
      await memory.close();
      memory = memory.reopen();
      return memory;
    });
  } finally {
    await cleanup();
  }
}

test("both stores: records, images and metadata round-trip and range reads see the right versions", async () => {
  await withStores(async (store, reopen) => {
    const w = new ModelWriter(g);
    const rand = prng(1);
    for (let i = 0; i < 40; i++) w.next(rand, 1 + rand.int(8), { skip: rand.int(3) });
    const annulled = meta({ knownVdl: Lsn(30), materializedLsn: Lsn(25), annulments: [{ epoch: Epoch(2), aboveLsn: Lsn(20) }] });
    await store.commit([{ op: "putSegment", meta: annulled }, ...w.records.map((record) => ({ op: "putRecord" as const, key, record }))]);
    const image = new Uint8Array(512).fill(7);
    await store.commit([{ op: "putImage", key, pageNo: PageNo(2), lsn: Lsn(10), bytes: image }, { op: "putImage", key, pageNo: PageNo(2), lsn: Lsn(30), bytes: image }]);
    for (let round = 0; round < 2; round++) {
      const s = round === 0 ? store : await reopen();
      assert.deepEqual(s.listSegments(), [annulled]);
      assert.deepEqual(s.getSegment(key), annulled);
      assert.equal(s.getSegment({ ...key, pgId: PgId(4) }), undefined);
      assert.equal(s.newestImage(key, PageNo(2), Lsn(29))?.lsn, 10);
      assert.equal(s.newestImage(key, PageNo(2), Lsn(30))?.lsn, 30);
      assert.equal(s.newestImage(key, PageNo(2), Lsn(9)), undefined);
      assert.equal(s.newestImageLsn(key, PageNo(2), Lsn(1000)), 30);
      assert.deepEqual(s.imageLsns(key, PageNo(2), Lsn(0), Lsn(100), 10), [10, 30]);
      for (let page = 1; page <= 8; page++) {
        const expected = w.records.filter((r) => r.pageNo === page && r.lsn > 5 && r.lsn <= 40);
        const got = s.pageRecords(key, PageNo(page), Lsn(5), Lsn(40));
        assert.deepEqual(got.map((r) => r.lsn), expected.map((r) => r.lsn));
        assert.deepEqual(got.map((r) => Buffer.from(r.bytes).toString("hex")), expected.map((r) => Buffer.from(r.bytes).toString("hex")));
        assert.equal(s.countPageRecords(key, PageNo(page), Lsn(5), Lsn(40)), expected.length);
      }
      const all = s.recordsByLsn(key, Lsn(0), Lsn(10_000), 1 << 20);
      assert.deepEqual(all.records.map((r) => r.lsn), w.records.map((r) => r.lsn));
      assert.equal(all.more, false);
      const some = s.recordsByLsn(key, Lsn(0), Lsn(10_000), 1);
      assert.equal(some.records.length, 1);
      assert.equal(some.more, true);
      assert.deepEqual(s.recordIndexDesc(key, Lsn(0), Lsn(10_000), 3).map((e) => e.lsn), w.records.slice(-3).reverse().map((r) => r.lsn));
      const pages = new Set(w.records.map((r) => r.pageNo));
      let p = 0;
      const walked: number[] = [];
      for (let next = s.nextPage(key, p); next !== undefined; next = s.nextPage(key, p)) { walked.push(next); p = next; }
      assert.deepEqual(walked, [...pages].sort((a, b) => a - b));
    }
  });
});

test("both stores: a flipped bit in a stored record, image or metadata is CORRUPT_DATA, never served", async () => {
  await withStores(async (store) => {
    const w = new ModelWriter(g);
    const rand = prng(2);
    const r = w.next(rand, 4);
    await store.commit([{ op: "putSegment", meta: meta() }, { op: "putRecord", key, record: r }, { op: "putImage", key, pageNo: PageNo(4), lsn: r.lsn, bytes: new Uint8Array(512).fill(1) }]);
    const corrupt = (e: unknown) => isBorealisError(e, "CORRUPT_DATA");
    for (const bit of [0, 17, 40, 8 * 30 + 3]) {
      assert.ok(await store.flipStoredBit("record", key, 4, r.lsn, bit));
      assert.throws(() => store.pageRecords(key, PageNo(4), Lsn(0), r.lsn), corrupt, `record bit ${bit}`);
      assert.throws(() => store.recordsByLsn(key, Lsn(0), r.lsn, 100), corrupt);
      await store.flipStoredBit("record", key, 4, r.lsn, bit); // undo
      assert.equal(store.pageRecords(key, PageNo(4), Lsn(0), r.lsn).length, 1);
      assert.ok(await store.flipStoredBit("image", key, 4, r.lsn, bit));
      assert.throws(() => store.newestImage(key, PageNo(4), r.lsn), corrupt, `image bit ${bit}`);
      await store.flipStoredBit("image", key, 4, r.lsn, bit);
    }
    assert.ok(await store.flipStoredBit("meta", key, 0, 0, 13));
    assert.throws(() => store.getSegment(key), corrupt);
    const reported: string[] = [];
    assert.deepEqual(store.listSegments((what) => reported.push(what)), []);
    assert.equal(reported.length, 1);
  });
});

test("both stores: a record filed under another segment's key fails its identity check", async () => {
  await withStores(async (store) => {
    const w = new ModelWriter(g);
    const r = w.next(prng(3), 2);
    const other = { ...key, pgId: PgId(9) };
    await store.commit([{ op: "putRecord", key: other, record: r }]);
    assert.throws(() => store.pageRecords(other, PageNo(2), Lsn(0), r.lsn), (e) => isBorealisError(e, "CORRUPT_DATA"));
  });
});

test("memory store: a failed commit changes nothing; a commit with a clock lands after its latency", async () => {
  const store = new MemoryPageStore();
  store.failNextCommits(1);
  await assert.rejects(store.commit([{ op: "putSegment", meta: meta() }]));
  assert.deepEqual(store.listSegments(), []);
  await store.commit([{ op: "putSegment", meta: meta() }]);
  assert.equal(store.listSegments().length, 1);
  let timer: (() => void) | undefined;
  const clock = { nowMs: () => 0, wallMs: () => 0, setTimer: (_ms: number, fn: () => void) => { timer = fn; return { cancel() {} }; }, sleep: async () => {} };
  const slow = store.reopen({ clock, commitLatencyMs: 5 });
  const pending = slow.commit([{ op: "putSegment", meta: meta({ knownVdl: Lsn(9) }) }]);
  assert.equal(slow.getSegment(key)?.knownVdl, 0, "not visible before it completes");
  timer!();
  await pending;
  assert.equal(slow.getSegment(key)?.knownVdl, 9);
});
