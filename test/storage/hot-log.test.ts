import { test } from "node:test";
import assert from "node:assert/strict";
import { appendFile, mkdir, readdir, rm, stat, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { isBorealisError } from "../../src/core/errors.js";
import { Lsn, PgId } from "../../src/core/types.js";
import { FaultyDisk } from "../../src/env/faulty-disk.js";
import { realDisk, silentLogger } from "../../src/env/real.js";
import { HOT_LOG_HEADER_BYTES, HotLog, encodeEntry, type HotLogBatch, type ReplayReport } from "../../src/storage/hot-log.js";
import { encodeRecord } from "../../src/wire/record.js";
import type { Disk } from "../../src/env/env.js";
import { MemoryDisk, ModelWriter, geometry, prng, tempDir } from "./helpers.js";

// Small pages keep entries small, so that "every byte" and "every bit" stay quick (the hot log does
// not care about page sizes).
const g = geometry("vol-h", 0, 1, 32, 64);

function batches(count: number, recordsPerBatch: number, seed = 1): HotLogBatch[] {
  const w = new ModelWriter(g);
  const rand = prng(seed);
  const out: HotLogBatch[] = [];
  for (let b = 0; b < count; b++) {
    const records = [];
    for (let i = 0; i < recordsPerBatch; i++) records.push(w.next(rand, 1 + rand.int(32), { full: rand.int(10) === 0 }));
    out.push({ key: w.key, writerVdl: Lsn(records[0]!.lsn - 1), records });
  }
  return out;
}

/** A batch's identity for comparison: the exact bytes of its entry. */
function fingerprint(b: HotLogBatch): string {
  return Buffer.from(encodeEntry(b)).toString("hex");
}

async function replay(dir: string, disk = realDisk, options: { fileSizeBytes?: number } = {}): Promise<{ log: HotLog; got: HotLogBatch[]; report: ReplayReport }> {
  const got: HotLogBatch[] = [];
  const { hotLog, report } = await HotLog.open(disk, silentLogger, { dir, nodeId: "n1", ...options }, (b) => {
    // Copy: the records are views into the replay buffer.
    got.push({ key: b.key, writerVdl: b.writerVdl, records: b.records.map((r) => ({ ...r, bytes: r.bytes.slice() })) });
    return b.records.length; // keep them all, so no file is released under the test
  });
  return { log: hotLog, got, report };
}

async function logFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.endsWith(".hlog")).sort();
}

test("appends are acknowledged after fsync and a restart replays every acknowledged batch", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const input = batches(50, 3);
    const { log } = await replay(dir);
    const seqs = await Promise.all(input.map((b) => log.append(b)));
    for (const s of seqs) log.dropRefs(s, 1);
    await log.close();
    const { log: again, got, report } = await replay(dir);
    assert.deepEqual(got.map(fingerprint), input.map(fingerprint));
    assert.equal(report.entries, 50);
    assert.equal(report.corruptEntries, 0);
    await again.close();
  } finally {
    await cleanup();
  }
});

/** Writes `input` to a fresh log on `disk` in `dir`; returns the log file's path and bytes. */
async function writeLog(disk: Disk, dir: string, input: readonly HotLogBatch[]): Promise<{ file: string; bytes: Uint8Array }> {
  const { log } = await replay(dir, disk);
  for (const b of input) log.dropRefs(await log.append(b), 1);
  await log.close();
  const names = (await disk.list(dir)).filter((n) => n.endsWith(".hlog"));
  assert.equal(names.length, 1);
  const file = path.join(dir, names[0]!);
  return { file, bytes: await disk.readFile(file) };
}

/**
 * Replays a copy of the log whose file is replaced by `damaged`, on the memory disk (thousands of
 * cases) or on real files (a sample, so the real disk path is covered too).
 */
async function replayDamaged(real: { base: string } | undefined, memory: MemoryDisk, file: string, damaged: Uint8Array): Promise<{ got: HotLogBatch[]; report: ReplayReport; size: number }> {
  if (real === undefined) {
    const disk = memory.clone();
    disk.files.set(file, damaged.slice());
    const { log, got, report } = await replay(path.dirname(file), disk);
    await log.close();
    return { got, report, size: disk.files.get(file)!.byteLength };
  }
  const dir = path.join(real.base, `case-${Math.random().toString(36).slice(2)}`);
  await mkdir(dir, { recursive: true });
  const copy = path.join(dir, path.basename(file));
  await writeFile(copy, damaged);
  try {
    const { log, got, report } = await replay(dir);
    await log.close();
    return { got, report, size: (await stat(copy)).size };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("a torn tail, cut at every byte of the last entry, keeps exactly the complete entries", async () => {
  const { dir: base, cleanup } = await tempDir();
  try {
    const input = batches(6, 2, 7);
    const memory = new MemoryDisk();
    const { file, bytes } = await writeLog(memory, "/log", input);
    const full = bytes.byteLength;
    const lastStart = full - encodeEntry(input[input.length - 1]!).byteLength;
    const expected = input.slice(0, -1).map(fingerprint);
    for (let cut = lastStart; cut < full; cut++) {
      // Every offset on the memory disk; every 16th on real files.
      for (const real of (cut - lastStart) % 16 === 0 ? [undefined, { base }] : [undefined]) {
        const { got, report, size } = await replayDamaged(real, memory, file, bytes.subarray(0, cut));
        assert.deepEqual(got.map(fingerprint), expected, `cut at ${cut}`);
        assert.equal(report.truncatedBytes, cut - lastStart, `cut at ${cut}`);
        assert.equal(size, lastStart, "the torn tail is cut off the file");
      }
    }
  } finally {
    await cleanup();
  }
});

test("every flipped bit of an entry is detected: that entry is lost, never served, the others survive", async () => {
  const { dir: base, cleanup } = await tempDir();
  try {
    const input = batches(5, 2, 11);
    const memory = new MemoryDisk();
    const { file, bytes } = await writeLog(memory, "/log", input);
    const originals = new Set(input.map(fingerprint));
    const sizes = input.map((b) => encodeEntry(b).byteLength);
    // The first entry, a middle one (damage inside the file) and the last one (damage at the tail).
    for (const victim of [0, 2, 4]) {
      const start = HOT_LOG_HEADER_BYTES + sizes.slice(0, victim).reduce((a, b) => a + b, 0);
      const expected = input.filter((_, i) => i !== victim).map(fingerprint);
      for (let bit = 0; bit < sizes[victim]! * 8; bit++) {
        const damaged = bytes.slice();
        damaged[start + (bit >> 3)]! ^= 1 << (bit & 7);
        for (const real of bit % 97 === 0 ? [undefined, { base }] : [undefined]) {
          const { got, report } = await replayDamaged(real, memory, file, damaged);
          for (const b of got) assert.ok(originals.has(fingerprint(b)), `entry ${victim} bit ${bit}: a damaged batch was served`);
          assert.deepEqual(got.map(fingerprint), expected, `entry ${victim} bit ${bit}`);
          assert.ok(report.corruptEntries + (report.truncatedBytes > 0 ? 1 : 0) >= 1, `entry ${victim} bit ${bit}: damage reported`);
        }
      }
    }
  } finally {
    await cleanup();
  }
});

test("a record filed under another segment's identity is detected even when its entry checksum holds", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const [a, c] = batches(2, 2, 3);
    const { log } = await replay(dir);
    log.dropRefs(await log.append(a!), 1);
    await log.close();
    // Records encoded for PG 1, filed in an entry that says PG 0: the entry's own checksum is right.
    const w = new ModelWriter(geometry("vol-h", 1, 1, 32, 64));
    const rand = prng(5);
    const foreign = [w.next(rand, 3), w.next(rand, 4)];
    const misfiled = encodeEntry({ key: { volumeId: g.volumeId, pgId: PgId(0) }, writerVdl: Lsn(0), records: foreign });
    const [file] = await logFiles(dir);
    await appendFile(path.join(dir, file!), misfiled);
    await appendFile(path.join(dir, file!), encodeEntry(c!));
    const { log: l, got, report } = await replay(dir);
    assert.deepEqual(got.map(fingerprint), [a!, c!].map(fingerprint));
    assert.equal(report.corruptEntries, 1);
    await l.close();
    // And a record under another volume id fails the same way.
    const other = encodeRecord(foreign[0]!, { volumeId: g.volumeId, pgId: PgId(1) });
    assert.ok(other.bytes.byteLength > 0);
  } finally {
    await cleanup();
  }
});

test("an fsync error fences the log: that batch and every later one is refused, nothing is acknowledged after", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const disk = new FaultyDisk(realDisk);
    const input = batches(40, 1, 13);
    const { log } = await replay(dir, disk);
    const acked: number[] = [];
    const refused: number[] = [];
    const track = (i: number) => log.append(input[i]!).then((s) => { acked.push(i); log.dropRefs(s, 1); }, (e) => {
      assert.ok(isBorealisError(e, "STORAGE_FENCED"), `append ${i}: ${String(e)}`);
      refused.push(i);
    });
    for (let i = 0; i < 10; i++) await track(i);
    disk.failNextSync(/\.hlog$/);
    // Batches 10..19 arrive together: they share the failing fsync or queue behind it.
    await Promise.all(Array.from({ length: 10 }, (_, k) => track(10 + k)));
    // Later batches: refused at once, even though the disk would now work.
    for (let i = 20; i < 40; i++) await track(i);
    assert.deepEqual(acked, Array.from({ length: 10 }, (_, i) => i));
    assert.deepEqual(refused.sort((x, y) => x - y), Array.from({ length: 30 }, (_, i) => 10 + i));
    assert.equal(log.fenced, true);
    await log.close();
    // A restart replays at least everything acknowledged.
    const { log: again, got } = await replay(dir);
    const replayed = new Set(got.map(fingerprint));
    for (const i of acked) assert.ok(replayed.has(fingerprint(input[i]!)), `acknowledged batch ${i} survives`);
    await again.close();
  } finally {
    await cleanup();
  }
});

test("group commit: many concurrent appends share far fewer fsyncs", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const disk = new FaultyDisk(realDisk);
    const input = batches(1000, 1, 17);
    const { log } = await replay(dir, disk);
    disk.resetCounts();
    const clients = 32;
    let next = 0;
    await Promise.all(Array.from({ length: clients }, async () => {
      while (next < input.length) {
        const b = input[next++]!;
        log.dropRefs(await log.append(b), 1);
      }
    }));
    const stats = log.stats();
    assert.equal(stats.appends, 1000);
    assert.equal(disk.counts.sync, stats.groups);
    assert.ok(disk.counts.sync <= 1000 / 8, `${disk.counts.sync} fsyncs for 1000 appends`);
    assert.equal(disk.counts.write, disk.counts.sync, "one writev per group");
    await log.close();
  } finally {
    await cleanup();
  }
});

test("files roll at the configured size and are deleted once nothing references them", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const input = batches(200, 2, 19);
    const { log } = await replay(dir, realDisk, { fileSizeBytes: 4096 });
    const seqs: number[] = [];
    for (const b of input) {
      const s = await log.append(b);
      log.addRefs(s, b.records.length); // as a segment would, for the records it holds
      log.dropRefs(s, 1);
      seqs.push(s);
    }
    const files = await logFiles(dir);
    assert.ok(files.length > 5, `${files.length} files`);
    // Release every record: every file but the active one goes.
    for (let i = 0; i < input.length; i++) log.dropRefs(seqs[i]!, input[i]!.records.length);
    await log.close();
    const left = await logFiles(dir);
    assert.equal(left.length, 1);
    assert.equal(Number(left[0]!.slice(0, 16)), log.stats().activeFileSeq);
    // The files that remained referenced at restart are kept; the rest are not replayed.
    const { log: again, got } = await replay(dir);
    assert.equal(got.length <= 200, true);
    await again.close();
  } finally {
    await cleanup();
  }
});

test("the pending queue is bounded: appends beyond it are refused with BACKPRESSURE, the rest are durable", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const input = batches(300, 4, 23);
    const got = await (async () => {
      const { hotLog } = await HotLog.open(realDisk, silentLogger, { dir, nodeId: "n1", maxPendingBytes: 16 * 1024 }, () => 0);
      const results = await Promise.allSettled(input.map((b) => hotLog.append(b).then((s) => hotLog.dropRefs(s, 1))));
      await hotLog.close();
      return results;
    })();
    const refused = got.filter((r) => r.status === "rejected");
    assert.ok(refused.length > 0, "some appends were refused");
    for (const r of refused) assert.ok(isBorealisError((r as PromiseRejectedResult).reason, "BACKPRESSURE"));
    const ackedPrints = input.filter((_, i) => got[i]!.status === "fulfilled").map(fingerprint);
    const { log, got: replayed } = await replay(dir);
    assert.deepEqual(replayed.map(fingerprint), ackedPrints);
    await log.close();
  } finally {
    await cleanup();
  }
});
