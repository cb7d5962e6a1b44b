import { test } from "node:test";
import assert from "node:assert/strict";
import { isBorealisError, type ErrorCode } from "../../src/core/errors.js";
import { Epoch, Lsn, PageNo, PgId, VolumeId, type Epochs, type SegmentKey } from "../../src/core/types.js";
import { FaultyDisk } from "../../src/env/faulty-disk.js";
import { realDisk } from "../../src/env/real.js";
import { LmdbPageStore, MemoryPageStore } from "../../src/storage/page-store.js";
import { StorageNode, type StorageNodeConfig } from "../../src/storage/storage-node.js";
import type { Request, Response, SegmentGeometry } from "../../src/wire/messages.js";
import type { EncodedRecord } from "../../src/wire/record.js";
import { ModelWriter, epochs1, geometry, keyOf, modelPage, nodeConfig, prng, tempDir, testEnv } from "./helpers.js";

type Kind = "lmdb" | "memory";

/** The node reports it; the wire's SegmentState will carry it (see storage-node.ts). */
const highestPageNo = (state: object): number | undefined => (state as { highestPageNo?: number }).highestPageNo;

/** Opens, restarts and closes one node over one data directory and one kind of page store. */
class Harness {
  node!: StorageNode;
  private memory: MemoryPageStore | undefined;

  constructor(readonly kind: Kind, readonly dir: string, public config: StorageNodeConfig, readonly disk = realDisk as typeof realDisk | FaultyDisk) {}

  async open(overrides: Partial<StorageNodeConfig> = {}): Promise<StorageNode> {
    this.config = { ...this.config, ...overrides };
    let store: MemoryPageStore | undefined;
    if (this.kind === "memory") store = this.memory = this.memory === undefined ? new MemoryPageStore() : this.memory.reopen();
    this.node = await StorageNode.open(testEnv(this.disk), this.config, store);
    return this.node;
  }

  async restart(overrides: Partial<StorageNodeConfig> = {}): Promise<StorageNode> {
    await this.node.close();
    return this.open(overrides);
  }

  async call<T extends Response["type"]>(request: Request, type: T): Promise<Extract<Response, { type: T }>> {
    const response = await this.node.handle(request);
    assert.equal(response.type, type);
    return response as Extract<Response, { type: T }>;
  }

  async openSegment(g: SegmentGeometry, epochs: Epochs = epochs1) {
    return (await this.call({ type: "openSegment", geometry: g, epochs }, "segmentState")).state;
  }

  async write(key: SegmentKey, records: readonly EncodedRecord[], writerVdl: number, epochs: Epochs = epochs1): Promise<number> {
    return (await this.call({ type: "writeBatch", key, epochs, writerVdl: Lsn(writerVdl), records }, "writeAck")).scl;
  }

  async page(key: SegmentKey, pageNo: number, readPoint: number, epochs: Epochs = epochs1) {
    return this.call({ type: "getPage", key, epochs, pageNo: PageNo(pageNo), readPoint: Lsn(readPoint), minScl: Lsn(readPoint) }, "page");
  }

  async state(key: SegmentKey, epochs: Epochs = epochs1) {
    return (await this.call({ type: "getSegmentState", key, epochs }, "segmentState")).state;
  }
}

async function withHarness(kind: Kind, overrides: Partial<StorageNodeConfig>, fn: (h: Harness) => Promise<void>, disk?: FaultyDisk): Promise<void> {
  const { dir, cleanup } = await tempDir();
  const h = new Harness(kind, dir, nodeConfig(dir, overrides), disk ?? realDisk);
  try {
    await h.open();
    await fn(h);
  } finally {
    await h.node?.close().catch(() => {});
    await cleanup();
  }
}

async function rejects(p: Promise<unknown>, code: ErrorCode, check?: (details: Record<string, unknown>) => void): Promise<void> {
  await assert.rejects(p, (e) => {
    assert.ok(isBorealisError(e), `expected ${code}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    check?.(e.details);
    return true;
  });
}

/** Compares the node's pages with the naive model at `reads` random (page, read point) pairs. */
async function checkReads(h: Harness, w: ModelWriter, rand: { int(n: number): number }, reads: number, what: string): Promise<void> {
  const key = w.key;
  const state = await h.state(key);
  const acked = w.records.filter((r) => r.lsn <= state.scl);
  const points = [state.scl, state.retentionLsn, state.materializedLsn];
  for (let i = 0; i < reads; i++) {
    const pageNo = w.geometry.firstPage + rand.int(w.geometry.pageCount);
    const lo = state.retentionLsn;
    const readPoint = i < points.length ? points[i]! : lo + rand.int(state.scl - lo + 1);
    const got = await h.page(key, pageNo, readPoint);
    const want = modelPage(acked, pageNo, readPoint, w.geometry.pageSize);
    assert.equal(got.pageLsn, want.pageLsn, `${what}: page ${pageNo} at ${readPoint}: page LSN`);
    assert.ok(Buffer.from(got.bytes).equals(Buffer.from(want.bytes)), `${what}: page ${pageNo} at ${readPoint}: bytes differ`);
  }
}

/** Sends `records` in small batches, some swapped so that gaps open and close; the VDL trails acks. */
async function deliver(h: Harness, w: ModelWriter, records: readonly EncodedRecord[], rand: { int(n: number): number }, vdl: { value: number }): Promise<void> {
  const batches: EncodedRecord[][] = [];
  for (let i = 0; i < records.length;) {
    const n = 1 + rand.int(8);
    batches.push(records.slice(i, i + n));
    i += n;
  }
  for (let i = 0; i + 1 < batches.length; i++) {
    if (rand.int(4) === 0) [batches[i], batches[i + 1]] = [batches[i + 1]!, batches[i]!];
  }
  for (const b of batches) {
    const scl = await h.write(w.key, b, vdl.value);
    vdl.value = Math.max(vdl.value, scl);
  }
}

for (const kind of ["lmdb", "memory"] as const) {
  test(`GetPage matches the naive model before and after sorting, images, restart and retention (${kind})`, async () => {
    await withHarness(kind, { materializeThreshold: 4, hotLogFileBytes: 32 * 1024 }, async (h) => {
      const g = geometry("vol-n", 2, 101, 12, 512);
      const w = new ModelWriter(g);
      const rand = prng(kind === "lmdb" ? 101 : 202);
      await h.openSegment(g);
      const vdl = { value: 0 };
      const gen = (n: number) => {
        const out: EncodedRecord[] = [];
        for (let i = 0; i < n; i++) out.push(w.next(rand, 101 + rand.int(12), { full: rand.int(12) === 0, skip: rand.int(3) }));
        return out;
      };

      // All in memory: nothing sorted yet.
      await deliver(h, w, gen(300), rand, vdl);
      let state = await h.state(w.key);
      assert.equal(state.scl, w.records[w.records.length - 1]!.lsn);
      assert.equal(state.materializedLsn, 0);
      await checkReads(h, w, rand, 60, "in memory");

      // A batch with no records still carries the VDL; then sort and materialize everything.
      await h.write(w.key, [], state.scl);
      await h.node.runBackgroundUntilIdle();
      state = await h.state(w.key);
      assert.equal(state.materializedLsn, state.scl);
      const bg = h.node.stats().background;
      assert.equal(bg.sortedRecords, 300);
      assert.ok(bg.imagesWritten > 0, "long chains got images");
      assert.ok(h.node.stats().unsortedBytes === 0);
      await checkReads(h, w, rand, 60, "sorted and materialized");

      // Restart: everything comes back from the page store.
      await h.restart();
      assert.deepEqual(await h.state(w.key), state);
      await checkReads(h, w, rand, 40, "after restart");

      // Some sorted, some only in the hot log, some past a gap; restart in the middle.
      const more = gen(120);
      await deliver(h, w, more.slice(0, 100), rand, vdl);
      await h.node.runBackgroundUntilIdle();
      await h.write(w.key, more.slice(101), vdl.value); // more[100] is missing: a gap
      state = await h.state(w.key);
      assert.equal(state.scl, more[99]!.lsn);
      assert.equal(state.highestLsn, more[119]!.lsn);
      await rejects(h.page(w.key, 101, more[110]!.lsn), "READ_POINT_ABOVE_SCL", (d) => assert.equal(d.scl, more[99]!.lsn));
      await h.restart();
      const after = await h.state(w.key);
      assert.equal(after.scl, state.scl);
      assert.equal(after.highestLsn, state.highestLsn);
      assert.ok(after.materializedLsn > 0 && after.materializedLsn <= after.scl);
      await checkReads(h, w, rand, 40, "partly sorted, after restart");
      assert.equal(await h.write(w.key, [more[100]!], vdl.value), more[119]!.lsn, "the gap fills after restart");
      await checkReads(h, w, rand, 40, "gap filled");

      // Retention: keep only the last 150 LSNs of history.
      await h.restart({ retainLsns: 150 });
      const tail = gen(200);
      await deliver(h, w, tail, rand, vdl);
      await h.write(w.key, [], tail[tail.length - 1]!.lsn);
      await h.node.runBackgroundUntilIdle();
      state = await h.state(w.key);
      assert.ok(state.retentionLsn >= state.knownVdl - 150 && state.retentionLsn > 0, `retention ${state.retentionLsn}`);
      assert.ok(h.node.stats().background.gcRecordsDeleted > 0, "history below retention was collected");
      await checkReads(h, w, rand, 60, "after garbage collection");
      await rejects(h.page(w.key, 101, state.retentionLsn - 1), "READ_POINT_BELOW_RETENTION");
      await h.restart();
      await checkReads(h, w, rand, 30, "after garbage collection and restart");
    });
  });
}

test("a never-written page reads as zeros at LSN 0; bad requests get their codes", async () => {
  await withHarness("memory", {}, async (h) => {
    const g = geometry("vol-z", 0, 1, 4, 1024);
    const key = keyOf(g);
    await h.openSegment(g);
    const page = await h.page(key, 3, 0);
    assert.equal(page.pageLsn, 0);
    assert.deepEqual(page.bytes, new Uint8Array(1024));
    await rejects(h.page(key, 5, 0), "PAGE_OUT_OF_RANGE");
    await rejects(h.page(key, 1, 1), "READ_POINT_ABOVE_SCL", (d) => assert.equal(d.scl, 0));
    await rejects(h.page({ ...key, pgId: PgId(7) }, 1, 0), "SEGMENT_NOT_FOUND");
    await rejects(h.openSegment({ ...g, pageCount: 5 }), "SEGMENT_EXISTS");
    await rejects(h.openSegment({ ...g, volumeId: VolumeId("") }), "INVALID_ARGUMENT");
    assert.equal((await h.openSegment(g)).geometry.pageCount, 4, "openSegment is idempotent");
    await rejects(h.node.handle({ type: "hello", minVersion: 1, maxVersion: 1, role: "admin", senderId: "x", maxFrameBytes: 1 }), "PROTOCOL_ERROR");
    assert.equal((await h.node.handle({ type: "ping" })).type, "pong");
    const status = await h.call({ type: "nodeStatus" }, "nodeStatus");
    assert.equal(status.segments.length, 1);
    assert.equal(status.fenced, false);
  });
});

test("epochs and annulment: stale writers are refused, annulled records vanish for good, across restarts", async () => {
  for (const kind of ["lmdb", "memory"] as const) {
    await withHarness(kind, {}, async (h) => {
      const g = geometry("vol-e", 1, 1, 8, 512);
      const key = keyOf(g);
      const w = new ModelWriter(g);
      const rand = prng(31);
      await h.openSegment(g);
      for (let i = 0; i < 20; i++) w.next(rand, 1 + rand.int(8));
      const old = [...w.records];
      await h.write(key, old, old[9]!.lsn);
      await h.node.runBackgroundUntilIdle(); // sorts up to the VDL (old[9]); the rest stays in memory

      const e2: Epochs = { volumeEpoch: Epoch(2), membershipEpoch: Epoch(1) };
      await rejects(h.write(key, [], 0, e2), "EPOCH_NOT_ADOPTED", (d) => assert.equal(d.epoch, 1));
      await h.call({ type: "setEpoch", key, epochs: e2, annulments: [] }, "segmentState");
      await rejects(h.write(key, old.slice(0, 1), 0), "STALE_VOLUME_EPOCH", (d) => assert.equal(d.epoch, 2));
      await rejects(h.page(key, 1, 1), "STALE_VOLUME_EPOCH");
      await rejects(h.call({ type: "setEpoch", key, epochs: epochs1, annulments: [] }, "segmentState"), "STALE_VOLUME_EPOCH");
      await rejects(h.call({ type: "setEpoch", key, epochs: { volumeEpoch: Epoch(2), membershipEpoch: Epoch(0) }, annulments: [] }, "segmentState"), "STALE_MEMBERSHIP_EPOCH");

      // Recovery: VDL was old[12]; everything of epoch 1 above it is annulled.
      const vdl = old[12]!.lsn;
      const annulled = (await h.call({ type: "annul", key, epochs: e2, annulments: [{ epoch: e2.volumeEpoch, aboveLsn: Lsn(vdl) }] }, "segmentState")).state;
      assert.equal(annulled.scl, vdl);
      assert.equal(annulled.highestLsn, vdl);
      // The old writer's records, arriving late inside a current batch, are dropped.
      assert.equal(await h.write(key, old.slice(13), vdl, e2), vdl);
      // The new writer continues from the VDL, reusing the annulled LSNs.
      w.resetTo(vdl, vdl, Epoch(2));
      const fresh = [w.next(rand, 2), w.next(rand, 3), w.next(rand, 2)];
      assert.equal(await h.write(key, fresh, vdl, e2), fresh[2]!.lsn);
      const check = async (what: string) => {
        const s = await h.state(key, e2);
        assert.equal(s.scl, fresh[2]!.lsn, what);
        for (let page = 1; page <= 8; page++) {
          for (const rp of [vdl, fresh[0]!.lsn, fresh[2]!.lsn]) {
            const got = await h.page(key, page, rp, e2);
            const want = modelPage(w.records, page, rp, 512);
            assert.equal(got.pageLsn, want.pageLsn, `${what}: page ${page} at ${rp}`);
            assert.ok(Buffer.from(got.bytes).equals(Buffer.from(want.bytes)), `${what}: page ${page} at ${rp}`);
          }
        }
        const recs = await h.call({ type: "readRecords", key, epochs: e2, afterLsn: Lsn(0), upToLsn: Lsn(1_000_000), maxBytes: 1 << 20 }, "records");
        assert.deepEqual(recs.records.map((r) => r.lsn), w.records.map((r) => r.lsn), what);
        assert.deepEqual(recs.records.map((r) => r.epoch), w.records.map((r) => r.epoch), what);
      };
      await check("after annul");
      // The annulled records are still in the hot log: a restart must drop them again.
      await h.restart();
      await check("after restart");
      await rejects(h.write(key, old.slice(15, 16), vdl), "STALE_VOLUME_EPOCH");
      await h.write(key, [], fresh[2]!.lsn, e2);
      await h.node.runBackgroundUntilIdle();
      await h.restart();
      await check("after sorting and restart");
      // A retried annulment changes nothing.
      assert.equal((await h.call({ type: "annul", key, epochs: e2, annulments: [{ epoch: e2.volumeEpoch, aboveLsn: Lsn(vdl) }] }, "segmentState")).state.scl, fresh[2]!.lsn);
    });
  }
});

test("an fsync error fences the node: the batch and every later one is refused; reads go on", async () => {
  const disk = new FaultyDisk(realDisk);
  await withHarness("lmdb", {}, async (h) => {
    const g = geometry("vol-f", 0, 1, 8, 512);
    const key = keyOf(g);
    const w = new ModelWriter(g);
    const rand = prng(41);
    await h.openSegment(g);
    const first = [w.next(rand, 1), w.next(rand, 2)];
    assert.equal(await h.write(key, first, 0), first[1]!.lsn);
    disk.failNextSync(/\.hlog$/);
    const second = [w.next(rand, 1)];
    await rejects(h.write(key, second, first[1]!.lsn), "STORAGE_FENCED");
    await rejects(h.write(key, [w.next(rand, 3)], first[1]!.lsn), "STORAGE_FENCED");
    assert.equal((await h.state(key)).scl, first[1]!.lsn, "nothing after the error counts");
    assert.equal((await h.call({ type: "nodeStatus" }, "nodeStatus")).fenced, true);
    const page = await h.page(key, 1, first[1]!.lsn);
    assert.equal(page.pageLsn, first[0]!.lsn);
    // Restart ("repaired"): every acknowledged record is there.
    await h.restart();
    assert.ok((await h.state(key)).scl >= first[1]!.lsn);
    assert.equal((await h.call({ type: "nodeStatus" }, "nodeStatus")).fenced, false);
  }, disk);
});

test("a page-store commit failure fences the node too", async () => {
  await withHarness("memory", {}, async (h) => {
    const g = geometry("vol-c", 0, 1, 8, 512);
    const key = keyOf(g);
    await h.openSegment(g);
    (h.node.store as MemoryPageStore).failNextCommits(1);
    await rejects(h.call({ type: "setEpoch", key, epochs: { volumeEpoch: Epoch(2), membershipEpoch: Epoch(1) }, annulments: [] }, "segmentState"), "STORAGE_FENCED");
    assert.equal((await h.state(key)).epochs.volumeEpoch, 1, "an epoch that did not become durable is not adopted");
    await rejects(h.write(key, [], 5), "STORAGE_FENCED");
  });
});

test("a corrupt stored record is CORRUPT_DATA at GetPage, never served", async () => {
  await withHarness("lmdb", {}, async (h) => {
    const g = geometry("vol-x", 0, 1, 4, 512);
    const key = keyOf(g);
    const w = new ModelWriter(g);
    const rand = prng(51);
    await h.openSegment(g);
    const recs = [w.next(rand, 1), w.next(rand, 1), w.next(rand, 2)];
    await h.write(key, recs, recs[2]!.lsn);
    await h.node.runBackgroundUntilIdle();
    assert.ok(await (h.node.store as LmdbPageStore).flipStoredBit("record", key, 1, recs[1]!.lsn, 77));
    await rejects(h.page(key, 1, recs[2]!.lsn), "CORRUPT_DATA");
    assert.equal((await h.page(key, 2, recs[2]!.lsn)).pageLsn, recs[2]!.lsn, "other pages still read");
  });
});

test("readRecords pages through memory and store in LSN order, bounded by maxBytes", async () => {
  await withHarness("memory", {}, async (h) => {
    const g = geometry("vol-r", 0, 1, 8, 512);
    const key = keyOf(g);
    const w = new ModelWriter(g);
    const rand = prng(61);
    await h.openSegment(g);
    for (let i = 0; i < 60; i++) w.next(rand, 1 + rand.int(8), { skip: rand.int(2) });
    await h.write(key, w.records.slice(0, 30), w.records[29]!.lsn);
    await h.node.runBackgroundUntilIdle();
    await h.write(key, w.records.slice(30, 50), w.records[29]!.lsn);
    await h.write(key, w.records.slice(51), w.records[29]!.lsn); // past a gap
    const got: EncodedRecord[] = [];
    let after = 0;
    for (let rounds = 0; rounds < 100; rounds++) {
      const r = await h.call({ type: "readRecords", key, epochs: epochs1, afterLsn: Lsn(after), upToLsn: Lsn(1e9), maxBytes: 700 }, "records");
      assert.equal(r.scl, w.records[49]!.lsn);
      got.push(...r.records);
      if (!r.more) break;
      assert.ok(r.records.length > 0);
      after = r.records[r.records.length - 1]!.lsn;
    }
    const want = w.records.filter((_, i) => i !== 50);
    assert.deepEqual(got.map((r) => r.lsn), want.map((r) => r.lsn));
    assert.ok(got.every((r, i) => Buffer.from(r.bytes).equals(Buffer.from(want[i]!.bytes))));
  });
});

test("hot log files are released once their records are sorted; restart replays only the rest", async () => {
  await withHarness("lmdb", { hotLogFileBytes: 8 * 1024 }, async (h) => {
    const g = geometry("vol-l", 0, 1, 16, 512);
    const key = keyOf(g);
    const w = new ModelWriter(g);
    const rand = prng(71);
    await h.openSegment(g);
    for (let i = 0; i < 400; i++) {
      const r = w.next(rand, 1 + rand.int(16));
      await h.write(key, [r], r.lsn - 1);
    }
    assert.ok(h.node.hotLogFiles().length > 3, `${h.node.hotLogFiles().length} files`);
    await h.write(key, [], w.records[399]!.lsn);
    await h.node.runBackgroundUntilIdle();
    await h.node.close(); // deletions finish before close returns
    await h.open();
    assert.ok(h.node.hotLogFiles().length <= 2, `${h.node.hotLogFiles().length} files left`);
    // Only the last active file was left to read, and none of its records needed keeping.
    assert.ok(h.node.stats().replay.files <= 1 && h.node.stats().replay.records < 400);
    assert.equal(h.node.stats().unsortedBytes, 0);
    assert.equal((await h.state(key)).scl, w.records[399]!.lsn);
  });
});

test("group commit across segments: concurrent batches share fsyncs", async () => {
  const disk = new FaultyDisk(realDisk);
  await withHarness("lmdb", {}, async (h) => {
    const writers: ModelWriter[] = [];
    for (let pg = 0; pg < 16; pg++) {
      const g = geometry("vol-g", pg, 1 + pg * 8, 8, 512);
      await h.openSegment(g);
      writers.push(new ModelWriter(g));
    }
    const rand = prng(81);
    disk.resetCounts();
    const perWriter = 40;
    await Promise.all(writers.map(async (w) => {
      for (let i = 0; i < perWriter; i++) {
        const r = w.next(rand, w.geometry.firstPage + rand.int(8));
        assert.equal(await h.write(w.key, [r], r.lsn - 1), r.lsn);
      }
    }));
    const batches = writers.length * perWriter;
    assert.ok(disk.counts.sync <= batches / 4, `${disk.counts.sync} fsyncs for ${batches} batches`);
    assert.equal(h.node.stats().hotLog.appends, batches);
  }, disk);
});

test("background work runs on the clock when enabled", async () => {
  await withHarness("lmdb", { backgroundWork: true, materializeThreshold: 2 }, async (h) => {
    const g = geometry("vol-b", 0, 1, 4, 512);
    const key = keyOf(g);
    const w = new ModelWriter(g);
    const rand = prng(91);
    await h.openSegment(g);
    for (let i = 0; i < 50; i++) w.next(rand, 1 + rand.int(4));
    await h.write(key, w.records, w.records[49]!.lsn);
    const deadline = Date.now() + 5000;
    const done = async () => (await h.state(key)).materializedLsn === w.records[49]!.lsn && h.node.stats().background.imagesWritten > 0;
    while (!(await done()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal((await h.state(key)).materializedLsn, w.records[49]!.lsn);
    assert.ok(h.node.stats().background.imagesWritten > 0);
  });
});

test("a group torn mid-write fences the node; a restart cuts the torn tail and keeps every acknowledged record", async () => {
  for (const torn of [1, 9, 100, 700]) {
    const disk = new FaultyDisk(realDisk);
    await withHarness("lmdb", {}, async (h) => {
      const g = geometry("vol-t", 0, 1, 8, 512);
      const key = keyOf(g);
      const w = new ModelWriter(g);
      const rand = prng(100 + torn);
      await h.openSegment(g);
      for (let i = 0; i < 80; i++) w.next(rand, 1 + rand.int(8), { skip: rand.int(2) });
      // Four concurrent writers of consecutive slices; the disk tears one group after a while.
      disk.inject({ op: "write", path: /\.hlog$/, after: 6, tornBytes: torn });
      const acked: EncodedRecord[] = [];
      await Promise.all([0, 1, 2, 3].map(async (k) => {
        for (let i = k * 20; i < k * 20 + 20; i += 2) {
          const batch = w.records.slice(i, i + 2);
          try {
            await h.write(key, batch, 0);
            acked.push(...batch);
          } catch (e) {
            assert.ok(isBorealisError(e, "STORAGE_FENCED"), String(e));
          }
        }
      }));
      assert.ok(acked.length > 0 && acked.length < 80, `${acked.length} acknowledged`);
      disk.clearFaults();
      await h.restart();
      const state = await h.state(key);
      assert.equal(h.node.fenced, false);
      assert.ok(h.node.stats().replay.truncatedBytes <= torn, "at most the torn bytes are cut");
      if (torn < 8) assert.equal(h.node.stats().replay.truncatedBytes, torn, "a torn entry prefix is cut");
      const held = await h.call({ type: "readRecords", key, epochs: epochs1, afterLsn: Lsn(0), upToLsn: Lsn(1e9), maxBytes: 1 << 20 }, "records");
      const heldLsns = new Set(held.records.map((r) => r.lsn));
      for (const r of acked) assert.ok(heldLsns.has(r.lsn), `torn ${torn}: acknowledged record ${r.lsn} survives`);
      for (const r of held.records) {
        const orig = w.records.find((x) => x.lsn === r.lsn)!;
        assert.ok(Buffer.from(r.bytes).equals(Buffer.from(orig.bytes)), "held records are intact");
      }
      // The rest can be sent again and the chain completes.
      assert.equal(await h.write(key, w.records, 0), w.records[79]!.lsn);
      assert.ok(state.scl <= w.records[79]!.lsn);
    }, disk);
  }
});

test("setEpoch and annul carrying earlier recoveries' annulments catch up a segment that missed one", async () => {
  for (const kind of ["lmdb", "memory"] as const) {
    await withHarness(kind, {}, async (h) => {
      const g = geometry("vol-m", 0, 1, 16, 512);
      const key = keyOf(g);
      const w = new ModelWriter(g);
      const rand = prng(111);
      await h.openSegment(g);
      for (let i = 0; i < 20; i++) w.next(rand, 1 + (i % 16));
      await h.write(key, w.records, w.records[5]!.lsn);
      await h.node.runBackgroundUntilIdle();
      assert.equal(highestPageNo(await h.state(key)), 16);
      // Recovery 2 (epoch 2, VDL records[9]) happened without this segment; recovery 3 tells it.
      const e3: Epochs = { volumeEpoch: Epoch(3), membershipEpoch: Epoch(1) };
      const history = [{ epoch: Epoch(2), aboveLsn: w.records[9]!.lsn }];
      const raised = await h.call({ type: "setEpoch", key, epochs: e3, annulments: history }, "segmentState");
      assert.equal(raised.state.scl, w.records[9]!.lsn);
      assert.equal(raised.state.epochs.volumeEpoch, 3);
      assert.equal(highestPageNo(raised.state), 10, "pages of annulled records no longer count");
      const all = [...history, { epoch: Epoch(3), aboveLsn: w.records[9]!.lsn }];
      const annulled = await h.call({ type: "annul", key, epochs: e3, aboveLsn: Lsn(0), annulments: all } as unknown as Request, "segmentState");
      assert.equal(annulled.state.scl, w.records[9]!.lsn);
      await rejects(h.call({ type: "annul", key, epochs: e3, aboveLsn: Lsn(0), annulments: [{ epoch: 4, aboveLsn: 1 }] } as unknown as Request, "segmentState"), "INVALID_ARGUMENT");
      await h.restart();
      const s = await h.state(key, e3);
      assert.equal(s.scl, w.records[9]!.lsn);
      assert.equal(highestPageNo(s), 10);
      for (let page = 1; page <= 16; page++) {
        const got = await h.page(key, page, s.scl, e3);
        assert.equal(got.pageLsn, modelPage(w.records, page, s.scl, 512).pageLsn);
      }
    });
  }
});
