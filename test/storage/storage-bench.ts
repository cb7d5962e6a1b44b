/**
 * Storage micro-benchmark: hot-log group commit, the node's write path and GetPage, on real files.
 * Not a test: it does nothing unless BOREALIS_BENCH=1 (it lives here until `bench/` has a storage
 * suite). Run:
 *
 *     npx tsc -p . --outDir .out/storage && BOREALIS_BENCH=1 node .out/storage/test/storage/storage-bench.js
 */
import { FaultyDisk } from "../../src/env/faulty-disk.js";
import { realDisk, silentLogger } from "../../src/env/real.js";
import { Lsn } from "../../src/core/types.js";
import { HotLog } from "../../src/storage/hot-log.js";
import { StorageNode } from "../../src/storage/storage-node.js";
import { ModelWriter, epochs1, geometry, nodeConfig, prng, tempDir, testEnv } from "./helpers.js";

const SECONDS = Number(process.env["BOREALIS_BENCH_SECONDS"] ?? 2);

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function benchHotLog(clients: number): Promise<void> {
  const { dir, cleanup } = await tempDir("borealis-bench-");
  try {
    const disk = new FaultyDisk(realDisk);
    const { hotLog } = await HotLog.open(disk, silentLogger, { dir, nodeId: "bench" }, () => 0);
    const g = geometry("bench", 0, 1, 1000, 4096);
    const w = new ModelWriter(g);
    const rand = prng(1);
    // Single-row-commit-sized records: a ~60-byte diff each (first touch of a page is a full image,
    // so pre-touch the pages we use).
    for (let p = 1; p <= 1000; p++) w.next(rand, p);
    const records = Array.from({ length: 20_000 }, () => w.next(rand, 1 + rand.int(1000)));
    disk.resetCounts();
    const latencies: number[] = [];
    const end = performance.now() + SECONDS * 1000;
    let i = 0;
    let bytes = 0;
    const started = performance.now();
    await Promise.all(Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const r = records[i++ % records.length]!;
        const t0 = performance.now();
        hotLog.dropRefs(await hotLog.append({ key: w.key, writerVdl: Lsn(0), records: [r] }), 1);
        latencies.push(performance.now() - t0);
        bytes += r.bytes.byteLength;
      }
    }));
    const secs = (performance.now() - started) / 1000;
    await hotLog.close();
    latencies.sort((a, b) => a - b);
    const s = hotLog.stats();
    console.log(`hot log, ${clients} clients: ${Math.round(s.appends / secs)} appends/s, ${Math.round(disk.counts.sync / secs)} fdatasyncs/s, ` +
      `${(s.appends / disk.counts.sync).toFixed(1)} appends per fdatasync, avg record ${Math.round(bytes / s.appends)} B, ` +
      `latency p50 ${percentile(latencies, 0.5).toFixed(2)} ms p99 ${percentile(latencies, 0.99).toFixed(2)} ms`);
  } finally {
    await cleanup();
  }
}

async function benchNode(clients: number): Promise<void> {
  const { dir, cleanup } = await tempDir("borealis-bench-");
  try {
    const disk = new FaultyDisk(realDisk);
    const node = await StorageNode.open(testEnv(disk), nodeConfig(dir, { backgroundWork: process.env["BENCH_BG"] !== "0" }));
    const writers: ModelWriter[] = [];
    const rand = prng(2);
    const pgs = 16;
    const pagesPerPg = 256;
    for (let pg = 0; pg < pgs; pg++) {
      const g = geometry("bench", pg, 1 + pg * pagesPerPg, pagesPerPg, 4096);
      await node.handle({ type: "openSegment", geometry: g, epochs: epochs1 });
      const w = new ModelWriter(g);
      for (let p = 0; p < pagesPerPg; p++) w.next(rand, g.firstPage + p);
      await node.handle({ type: "writeBatch", key: w.key, epochs: epochs1, writerVdl: Lsn(0), records: w.records });
      writers.push(w);
    }
    // Records are made before the clock starts, so the figure is the node's, not the model writer's.
    const pending = writers.map((w) => Array.from({ length: 6000 }, () => w.next(rand, w.geometry.firstPage + rand.int(pagesPerPg))));
    const cursor = writers.map(() => 0);
    disk.resetCounts();
    const before = node.stats().hotLog;
    const latencies: number[] = [];
    const end = performance.now() + SECONDS * 1000;
    const started = performance.now();
    // Each client owns one PG's writer at a time (a writer's records for one PG go out in order, but
    // batches of one PG may be in flight together, as the commit pipeline sends them).
    await Promise.all(Array.from({ length: clients }, async (_, c) => {
      const pg = c % pgs;
      const w = writers[pg]!;
      while (performance.now() < end && cursor[pg]! < pending[pg]!.length) {
        const r = pending[pg]![cursor[pg]!++]!;
        const t0 = performance.now();
        await node.handle({ type: "writeBatch", key: w.key, epochs: epochs1, writerVdl: Lsn(r.lsn - 1), records: [r] });
        latencies.push(performance.now() - t0);
      }
    }));
    const secs = (performance.now() - started) / 1000;
    const after = node.stats().hotLog;
    const batches = after.appends - before.appends;
    latencies.sort((a, b) => a - b);
    console.log(`node writeBatch, ${clients} clients over ${pgs} PGs: ${Math.round(batches / secs)} batches/s, ` +
      `${(batches / (after.groups - before.groups)).toFixed(1)} batches per fdatasync, ` +
      `latency p50 ${percentile(latencies, 0.5).toFixed(2)} ms p99 ${percentile(latencies, 0.99).toFixed(2)} ms, ` +
      `sorted ${node.stats().background.sortedRecords} records, images ${node.stats().background.imagesWritten}`);

    // GetPage at each segment's SCL: half the pages' recent records still in memory, half sorted.
    await node.runBackgroundUntilIdle();
    const states = await Promise.all(writers.map(async (w) => {
      const r = await node.handle({ type: "getSegmentState", key: w.key, epochs: epochs1 });
      return r.type === "segmentState" ? r.state.scl : Lsn(0);
    }));
    let reads = 0;
    const readEnd = performance.now() + SECONDS * 1000;
    const readStart = performance.now();
    while (performance.now() < readEnd) {
      for (let k = 0; k < 100; k++) {
        const pg = rand.int(pgs);
        const w = writers[pg]!;
        await node.handle({ type: "getPage", key: w.key, epochs: epochs1, pageNo: w.geometry.firstPage + rand.int(pagesPerPg) as never, readPoint: states[pg]!, minScl: states[pg]! });
        reads++;
      }
    }
    console.log(`node getPage (LMDB, 4 KiB pages, ≤ 32-record chains): ${Math.round(reads / ((performance.now() - readStart) / 1000))} reads/s (one caller, sequential)`);
    await node.close();
  } finally {
    await cleanup();
  }
}

if (process.env["BOREALIS_BENCH"] === "1") {
  if (process.env["BENCH_ONLY_NODE"] !== "1") for (const clients of [1, 8, 32, 128]) await benchHotLog(clients);
  for (const clients of [1, 32, 128]) await benchNode(clients);
}
