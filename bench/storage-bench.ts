/**
 * `npm run bench:storage`: how many records per second one client gets acknowledged by six local
 * storage nodes (a real cluster of processes on loopback, `ProcessCluster`, no SQL writer), at several
 * batch sizes, with the acknowledgement latency (4/6 quorum) and — measured in the same run, on the
 * same filesystem — the disk's raw fsync rate as the anchor every figure is read against.
 *
 * Two clients, both one process:
 *   - "volume-writer": the production writer-side client (`recoverVolume` → `VolumeWriter`): one MTR
 *     of N records per batch, `submit` then `whenDurable(commitLsn)`; includes the shipper, the
 *     durable-point tracker (VCL/VDL) and commit waiters.
 *   - "storage-client": write batches straight through `StorageClient.writeBatch` to the six
 *     segments of each PG the batch touches, acknowledged when four segments' SCLs cover it; the
 *     storage side alone, with the least client-side work.
 * A batch is one MTR of N records on random consecutive pages across three PGs (`SyntheticStream`:
 * real byte-range diffs of single-row size). `depth` batches are kept outstanding (pipelined, like
 * that many concurrent committers); depth 1 (one batch at a time) gives the unloaded round trip.
 *
 * Flags: --quick (short runs, fewer sizes), --duration-ms, --warmup-ms, --sizes 1,16,64,256,
 * --depth 32, --no-write (print only). Results: bench/results/storage-<date>.{json,md}.
 */
process.env["UV_THREADPOOL_SIZE"] ??= "8"; // the parallel fsync anchor runs six appenders at once

import { closeSync, existsSync, fdatasyncSync, openSync, readFileSync, statfsSync, writeSync } from "node:fs";
import { mkdir, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Lsn, VolumeId, type Epochs, type NodeId, type PgId } from "../src/core/types.js";
import { isBorealisError } from "../src/core/errors.js";
import type { Volume } from "../src/control-plane/api.js";
import { realEnv, silentLogger } from "../src/env/real.js";
import type { Env } from "../src/env/env.js";
import { NodePool } from "../src/compute/volume/node-pool.js";
import { recoverVolume, type RecoveredVolume } from "../src/compute/volume/recovery.js";
import { VolumeWriter } from "../src/compute/volume/volume-writer.js";
import type { MiniTransaction } from "../src/compute/volume-io.js";
import { ProcessCluster } from "../src/testing/process-cluster.js";
import { SyntheticStream } from "../src/testing/synthetic-volume.js";
import { encodeRecord, type EncodedRecord } from "../src/wire/record.js";
import type { StorageClient } from "../src/wire/storage-client.js";

const PG_COUNT = 3;
const PG_PAGES = 1024;

interface Config {
  readonly quick: boolean;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly fsyncMs: number;
  readonly sizes: readonly number[];
  readonly depth: number;
  readonly write: boolean;
}

interface FsyncAnchor {
  /** One appender: write 4 KiB at the end of a file, fdatasync, repeat. */
  readonly single: { readonly perSec: number; readonly p50Ms: number; readonly p99Ms: number };
  /** Six appenders at once, one file each (one per storage node): total fsyncs/s. */
  readonly parallel6: { readonly perSec: number };
  readonly dir: string;
  readonly filesystem: string;
}

interface Row {
  readonly client: "volume-writer" | "storage-client";
  readonly recordsPerBatch: number;
  readonly depth: number;
  readonly seconds: number;
  readonly batches: number;
  readonly records: number;
  readonly recordsPerSec: number;
  readonly batchesPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Encoded redo bytes per record (header + payload), as sent to each of six segments. */
  readonly bytesPerRecord: number;
  /** Acknowledged records/s ÷ the single-appender fsyncs/s. */
  readonly recordsPerFsync: number;
  /** Acknowledged batches/s ÷ the single-appender fsyncs/s. */
  readonly batchesPerFsync: number;
  /** CPU time per acknowledged record during the measured window: the client process, and the six nodes together. */
  readonly clientCpuUsPerRecord: number;
  readonly nodesCpuUsPerRecord: number;
  /**
   * CPU the client and the six nodes used, as a share of the machine's cores over the window: well
   * below 1 while the figures are not disk-bound means the processes were waiting for a CPU (a
   * shared machine) — then records per CPU-second, not records per second, is the figure to compare.
   */
  readonly cpuShare: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      "duration-ms": { type: "string" },
      "warmup-ms": { type: "string" },
      sizes: { type: "string" },
      depth: { type: "string" },
      "no-write": { type: "boolean", default: false },
    },
  });
  const quick = values.quick === true;
  const config: Config = {
    quick,
    durationMs: Number(values["duration-ms"] ?? (quick ? 1000 : 5000)),
    warmupMs: Number(values["warmup-ms"] ?? (quick ? 300 : 1000)),
    fsyncMs: quick ? 1000 : 2000,
    sizes: (values.sizes ?? (quick ? "1,64" : "1,16,64,256")).split(",").map(Number),
    depth: Number(values.depth ?? 32),
    write: values["no-write"] !== true,
  };
  for (const n of [config.durationMs, config.warmupMs, config.depth, ...config.sizes]) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`bad numeric flag: ${n}`);
  }
  const loadStart = os.loadavg();
  const startedAt = new Date();
  console.log(`storage bench: ${config.sizes.join(", ")} records/batch, depth 1 and ${config.depth}, ${config.durationMs} ms per run after ${config.warmupMs} ms warm-up`);

  // The anchor first, on the filesystem the cluster will use, while nothing else of ours runs.
  const anchor = await measureFsync(config.fsyncMs);
  console.log(`raw fsync (${anchor.filesystem} at ${anchor.dir}): one appender ${anchor.single.perSec.toFixed(0)}/s (p50 ${anchor.single.p50Ms.toFixed(2)} ms, p99 ${anchor.single.p99Ms.toFixed(2)} ms); six appenders ${anchor.parallel6.perSec.toFixed(0)}/s in total`);

  const cluster = await ProcessCluster.start({ writer: false });
  const rows: Row[] = [];
  try {
    const env = realEnv({ log: silentLogger });
    const runs: { client: Row["client"]; size: number; depth: number }[] = [];
    for (const client of ["volume-writer", "storage-client"] as const) {
      for (const depth of [1, config.depth]) for (const size of config.sizes) runs.push({ client, size, depth });
    }
    for (const client of ["volume-writer", "storage-client"] as const) {
      const volumeId = `bench-${client}`;
      await createVolume(cluster, volumeId);
      const pool = new NodePool(env, { senderId: volumeId });
      try {
        const recovered = await recoverVolume({ env, controlPlane: cluster.api, pool, volumeId: VolumeId(volumeId) });
        const stream = new SyntheticStream({ seed: 42, pgPages: PG_PAGES, pgCount: PG_COUNT, pageSize: recovered.volume.pageSize }, recovered.lsnState);
        const sink = client === "volume-writer" ? writerSink(env, pool, cluster, recovered) : await directSink(pool, recovered);
        const nodePids = cluster.nodes.map((n) => n.pid).filter((p): p is number => p !== null);
        try {
          for (const run of runs.filter((r) => r.client === client)) {
            const row = await measure(client, sink, stream, run.size, run.depth, config, anchor, nodePids);
            rows.push(row);
            console.log(formatRow(row));
          }
        } finally {
          sink.close();
        }
      } finally {
        pool.close();
      }
    }
  } finally {
    await cluster.destroy();
  }

  const report = {
    schema: "borealis-storage-bench/1",
    startedAt: startedAt.toISOString(),
    config,
    machine: {
      cpuModel: os.cpus()[0]?.model ?? "unknown", cores: os.cpus().length, memoryBytes: os.totalmem(),
      os: `${os.type()} ${os.release()}`, node: process.version, loadAverageAtStart: loadStart, loadAverageAtEnd: os.loadavg(),
    },
    cluster: { storageNodes: 6, azs: ["a", "a", "b", "b", "c", "c"], pgs: PG_COUNT, pgPages: PG_PAGES, writeQuorum: "4/6" },
    fsync: anchor,
    rows,
  };
  console.log("\n" + table(rows));
  if (config.write) {
    const dir = path.join(packageRoot(), "bench", "results");
    await mkdir(dir, { recursive: true });
    const stamp = startedAt.toISOString().slice(0, 10);
    const suffix = config.quick ? "-quick" : "";
    const base = path.join(dir, `storage-${stamp}${suffix}`);
    await writeFile(`${base}.json`, JSON.stringify(report, null, 2) + "\n");
    await writeFile(`${base}.md`, markdown(report));
    console.log(`\nwrote ${base}.json and ${base}.md`);
  }
}

// ------------------------------------------------------------------------------------ the anchor

async function measureFsync(ms: number): Promise<FsyncAnchor> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "borealis-fsync-"));
  try {
    const block = new Uint8Array(4096).fill(0x5a);
    // One appender, synchronous calls: nothing but the disk in the loop.
    const fd = openSync(path.join(dir, "single"), "w");
    const lat: number[] = [];
    const until = performance.now() + ms;
    try {
      for (let i = 0; i < 10_000_000 && performance.now() < until; i++) {
        const t = performance.now();
        writeSync(fd, block);
        fdatasyncSync(fd);
        lat.push(performance.now() - t);
      }
    } finally {
      closeSync(fd);
    }
    const elapsed = ms / 1000;
    lat.sort((a, b) => a - b);
    // Six appenders at once, as six storage nodes fsync their hot logs side by side.
    let total = 0;
    const stop = performance.now() + ms;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 6 }, async (_, k) => {
      const fh = await open(path.join(dir, `parallel-${k}`), "w");
      try {
        for (let i = 0; i < 10_000_000 && performance.now() < stop; i++) {
          await fh.write(block);
          await fh.datasync();
          total++;
        }
      } finally {
        await fh.close();
      }
    }));
    const parallelSeconds = (performance.now() - t0) / 1000;
    return {
      single: { perSec: lat.length / elapsed, p50Ms: percentile(lat, 0.5), p99Ms: percentile(lat, 0.99) },
      parallel6: { perSec: total / parallelSeconds },
      dir: os.tmpdir(),
      filesystem: filesystemName(statfsSync(dir).type),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function filesystemName(type: number): string {
  const known: Record<number, string> = {
    0xef53: "ext4", 0x01021994: "tmpfs", 0x9123683e: "btrfs", 0x58465342: "xfs", 0x794c7630: "overlayfs", 0x2fc12fc1: "zfs",
  };
  return known[type] ?? `fs 0x${type.toString(16)}`;
}

// ----------------------------------------------------------------------------------- the clients

/** Takes one batch; resolves when it is acknowledged by a write quorum of every PG it touches. */
interface Sink {
  submit(mtr: MiniTransaction): Promise<void>;
  /** Encoded bytes handed to the storage service so far (per copy). */
  bytes(): number;
  close(): void;
}

function writerSink(env: Env, pool: NodePool, cluster: ProcessCluster, recovered: RecoveredVolume): Sink {
  const vw = new VolumeWriter({
    env, pool, controlPlane: cluster.api, volume: recovered.volume, epoch: recovered.epoch,
    annulments: recovered.annulments, trackerStart: recovered.trackerStart,
  });
  return {
    submit(mtr) {
      vw.submit(mtr);
      return vw.whenDurable(mtr.commitLsn);
    },
    bytes: () => vw.stats().redoBytes,
    close: () => vw.close(),
  };
}

/**
 * Write batches straight to the segments: each PG's records of a batch go to its six segments in one
 * writeBatch each; a PG's part is acknowledged when four segments report an SCL at or above its last
 * record (PGCL), the batch when every part is. The writer VDL passed along (so nodes may sort) is the
 * last batch acknowledged together with every batch before it.
 */
async function directSink(pool: NodePool, recovered: RecoveredVolume): Promise<Sink> {
  const volume: Volume = recovered.volume;
  interface Member { readonly nodeId: NodeId; readonly client: StorageClient; scl: number }
  interface Part { readonly lsn: number; readonly done: () => void }
  const pgs = new Map<PgId, { epochs: Epochs; members: Member[]; waiting: Part[] }>();
  for (const pg of volume.pgs) {
    const epochs: Epochs = { volumeEpoch: recovered.epoch, membershipEpoch: pg.membershipEpoch };
    const members = pg.segments.map((s) => ({ nodeId: s.nodeId, client: pool.client(s.nodeId, s.address), scl: 0 }));
    // Recovery annulled on a write quorum; make sure all six take writes at this epoch.
    await Promise.all(members.map((m) => m.client.request({ type: "annul", key: { volumeId: volume.volumeId, pgId: pg.pgId }, epochs, annulments: recovered.annulments })));
    pgs.set(pg.pgId, { epochs, members, waiting: [] });
  }
  let bytes = 0;
  let vdl = recovered.lsnState.vdl as number;
  const order: { commitLsn: number; done: boolean }[] = [];
  let failed: unknown;
  const onAck = (pgId: PgId) => {
    const pg = pgs.get(pgId)!;
    const sorted = pg.members.map((m) => m.scl).sort((a, b) => b - a);
    const pgcl = sorted[3]!;
    while (pg.waiting.length > 0 && pg.waiting[0]!.lsn <= pgcl) pg.waiting.shift()!.done();
  };
  return {
    submit(mtr) {
      if (failed !== undefined) return Promise.reject(failed);
      const entry = { commitLsn: mtr.commitLsn as number, done: false };
      order.push(entry);
      const byPg = new Map<PgId, EncodedRecord[]>();
      for (const { pgId, record } of mtr.records) {
        const e = encodeRecord(record, { volumeId: volume.volumeId, pgId });
        bytes += e.bytes.byteLength;
        let list = byPg.get(pgId);
        if (list === undefined) byPg.set(pgId, (list = []));
        list.push(e);
      }
      const parts = [...byPg].map(([pgId, records]) => new Promise<void>((resolve, reject) => {
        const pg = pgs.get(pgId)!;
        pg.waiting.push({ lsn: records[records.length - 1]!.lsn, done: resolve });
        const key = { volumeId: volume.volumeId, pgId };
        for (const m of pg.members) {
          m.client.request({ type: "writeBatch", key, epochs: pg.epochs, writerVdl: Lsn(vdl), records }).then((ack) => {
            if (ack.scl > m.scl) m.scl = ack.scl;
            onAck(pgId);
          }, (e: unknown) => {
            failed ??= e;
            reject(e);
          });
        }
      }));
      return Promise.all(parts).then(() => {
        entry.done = true;
        while (order.length > 0 && order[0]!.done) vdl = order.shift()!.commitLsn;
      });
    },
    bytes: () => bytes,
    close: () => {},
  };
}

async function measure(client: Row["client"], sink: Sink, stream: SyntheticStream, size: number, depth: number, config: Config, anchor: FsyncAnchor, nodePids: readonly number[]): Promise<Row> {
  let outstanding = 0;
  let measuring = false;
  let running = true;
  let batches = 0;
  let records = 0;
  let error: unknown;
  const lat: number[] = [];
  let wake: (() => void) | undefined;
  const bytes0 = sink.bytes();
  const records0 = stream.records;
  const loop = (async () => {
    while (running && error === undefined) {
      while (running && outstanding < depth) {
        const mtr = stream.nextMtr(size);
        const n = mtr.records.length;
        const t = performance.now();
        outstanding++;
        sink.submit(mtr).then(() => {
          outstanding--;
          if (measuring) {
            batches++;
            records += n;
            lat.push(performance.now() - t);
          }
          wake?.();
        }, (e: unknown) => {
          outstanding--;
          error ??= e;
          wake?.();
        });
      }
      await new Promise<void>((resolve) => { wake = resolve; });
      wake = undefined;
    }
  })();
  await sleep(config.warmupMs);
  measuring = true;
  const t0 = performance.now();
  const clientCpu0 = process.cpuUsage();
  const nodesCpu0 = cpuMsOf(nodePids);
  await sleep(config.durationMs);
  measuring = false;
  const seconds = (performance.now() - t0) / 1000;
  const clientCpuUs = (() => { const d = process.cpuUsage(clientCpu0); return d.user + d.system; })();
  const nodesCpuUs = (cpuMsOf(nodePids) - nodesCpu0) * 1000;
  running = false;
  wake?.();
  await loop;
  // Drain (not measured): the next run starts with nothing outstanding.
  for (let i = 0; i < 3000 && outstanding > 0; i++) await sleep(10);
  if (error !== undefined) throw error;
  if (outstanding > 0) throw new Error(`${outstanding} batches still outstanding 30 s after the run`);
  lat.sort((a, b) => a - b);
  const sent = stream.records - records0;
  return {
    client, recordsPerBatch: size, depth, seconds, batches, records,
    recordsPerSec: records / seconds, batchesPerSec: batches / seconds,
    p50Ms: percentile(lat, 0.5), p99Ms: percentile(lat, 0.99), maxMs: lat[lat.length - 1] ?? NaN,
    bytesPerRecord: sent > 0 ? (sink.bytes() - bytes0) / sent : NaN,
    recordsPerFsync: records / seconds / anchor.single.perSec,
    batchesPerFsync: batches / seconds / anchor.single.perSec,
    clientCpuUsPerRecord: records > 0 ? clientCpuUs / records : NaN,
    nodesCpuUsPerRecord: records > 0 ? nodesCpuUs / records : NaN,
    cpuShare: (clientCpuUs + nodesCpuUs) / 1e6 / seconds / os.cpus().length,
  };
}

// --------------------------------------------------------------------------------------- helpers

async function createVolume(cluster: ProcessCluster, volumeId: string): Promise<void> {
  const deadline = performance.now() + 30_000;
  for (let attempt = 0; ; attempt++) {
    try {
      await cluster.api.createVolume({ volumeId: VolumeId(volumeId), pgPages: PG_PAGES, pgCount: PG_COUNT });
      return;
    } catch (e) {
      if (!isBorealisError(e, "PLACEMENT_IMPOSSIBLE") || performance.now() > deadline) throw e;
      await sleep(Math.min(500, 25 * 2 ** Math.min(attempt, 5)));
    }
  }
}

/** User + system CPU milliseconds of these processes so far (/proc/PID/stat, in clock ticks of 10 ms). */
function cpuMsOf(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const text = readFileSync(`/proc/${pid}/stat`, "utf8");
      // Fields after the command name (which may contain spaces): state is field 3, utime/stime 14/15.
      const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // A process that is gone counts nothing (it would fail the run anyway).
    }
  }
  return ticks * 10;
}

/** The checkout this file was compiled from (dist/bench/… or any other outDir): the nearest package.json up. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 10; i++) {
    if (existsSync(path.join(dir, "package.json"))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error("no package.json above the benchmark");
}

function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function formatRow(r: Row): string {
  return `${r.client.padEnd(14)} ${String(r.recordsPerBatch).padStart(4)} rec/batch depth ${String(r.depth).padStart(2)}: ` +
    `${r.recordsPerSec.toFixed(0).padStart(7)} records/s ${r.batchesPerSec.toFixed(0).padStart(6)} batches/s ` +
    `p50 ${r.p50Ms.toFixed(2)} ms p99 ${r.p99Ms.toFixed(2)} ms (${r.recordsPerFsync.toFixed(2)} records per raw fsync; ` +
    `CPU ${r.clientCpuUsPerRecord.toFixed(0)} + ${r.nodesCpuUsPerRecord.toFixed(0)} µs/record, share ${(100 * r.cpuShare).toFixed(0)} %)`;
}

function table(rows: readonly Row[]): string {
  const head = ["client", "records/batch", "depth", "acked records/s", "acked batches/s", "p50 ms", "p99 ms", "B/record", "records/s ÷ fsync/s", "batches/s ÷ fsync/s", "CPU µs/record client + nodes", "CPU share"];
  const lines = rows.map((r) => [
    r.client, String(r.recordsPerBatch), String(r.depth), r.recordsPerSec.toFixed(0), r.batchesPerSec.toFixed(0),
    r.p50Ms.toFixed(2), r.p99Ms.toFixed(2), r.bytesPerRecord.toFixed(0), r.recordsPerFsync.toFixed(2), r.batchesPerFsync.toFixed(2),
    `${r.clientCpuUsPerRecord.toFixed(0)} + ${r.nodesCpuUsPerRecord.toFixed(0)}`, `${(100 * r.cpuShare).toFixed(0)} %`,
  ]);
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...lines.map((l) => `| ${l.join(" | ")} |`)].join("\n");
}

function markdown(report: {
  startedAt: string; config: Config; machine: { cpuModel: string; cores: number; os: string; node: string; loadAverageAtStart: number[]; loadAverageAtEnd: number[] };
  fsync: FsyncAnchor; rows: Row[];
}): string {
  const { machine: m, fsync: f, rows, config: c } = report;
  const best = (client: Row["client"]) => rows.filter((r) => r.client === client).sort((a, b) => b.recordsPerSec - a.recordsPerSec)[0];
  const bw = best("volume-writer");
  const bd = best("storage-client");
  const single = rows.find((r) => r.client === "volume-writer" && r.depth === 1 && r.recordsPerBatch === 1);
  return `# Storage benchmark — ${report.startedAt}

\`npm run bench:storage${c.quick ? " -- --quick" : ""}\` (\`bench/storage-bench.ts\`). One client process against six local storage-node
processes (AZs a, a, b, b, c, c) on loopback, no SQL writer; three protection groups; a batch is one
mini-transaction of N records (byte-range diffs of single-row size) on random pages; a batch is
acknowledged when a write quorum (4 of 6) of every PG it touches has it on disk (fsync). ${c.depth} batches are
kept outstanding (depth 1: one at a time). Each run: ${c.warmupMs} ms warm-up, ${c.durationMs} ms measured.

- **volume-writer**: the production writer-side client (\`VolumeWriter\`: shipper, durable-point tracker, commit waiters): \`submit\` + \`whenDurable\`.
- **storage-client**: the same batches written straight through \`StorageClient.writeBatch\` to the six segments, counted at 4/6.

Machine: ${m.cpuModel}, ${m.cores} cores, ${m.os}, Node ${m.node}; load average ${m.loadAverageAtStart.map((x) => x.toFixed(1)).join(" ")} at start, ${m.loadAverageAtEnd.map((x) => x.toFixed(1)).join(" ")} at end (a shared VM: other work ran beside this).

## Anchor: the disk's raw fsync rate (same run, same filesystem: ${f.filesystem} at ${f.dir})

- one appender (4 KiB write + fdatasync, ${c.fsyncMs} ms): **${f.single.perSec.toFixed(0)} fsyncs/s** (p50 ${f.single.p50Ms.toFixed(2)} ms, p99 ${f.single.p99Ms.toFixed(2)} ms)
- six appenders at once (one file each, like six storage nodes): ${f.parallel6.perSec.toFixed(0)} fsyncs/s in total

## Results

${table(rows)}

## Reading it

${bw !== undefined ? `- Best with the production client: **${bw.recordsPerSec.toFixed(0)} acknowledged records/s** at ${bw.recordsPerBatch} records/batch (${bw.batchesPerSec.toFixed(0)} batches/s), ${bw.recordsPerFsync.toFixed(1)}× the raw single-appender fsync rate: every acknowledged batch costs at least one fsync on four nodes, so anything above 1× is group commit (one hot-log fdatasync covers every batch that arrived meanwhile, across segments).` : ""}
${bd !== undefined ? `- Straight through StorageClient: ${bd.recordsPerSec.toFixed(0)} records/s at ${bd.recordsPerBatch} records/batch; the difference to the production client is the writer side (tracker, shipper, waiters) and is what it costs.` : ""}
${single !== undefined ? `- One batch at a time (depth 1, 1 record): p50 ${single.p50Ms.toFixed(2)} ms, p99 ${single.p99Ms.toFixed(2)} ms per acknowledgement — the floor of a commit's latency, against ${f.single.p50Ms.toFixed(2)} ms for one raw fsync.` : ""}
- CPU: the last two columns are the CPU time the client and the six nodes spent per acknowledged record, and the share of the machine's ${m.cores} cores they got during the run. A share well below 100 % while nothing waits for the disk means the processes were waiting for a CPU (other work on a shared VM): records per CPU-second is then the comparable figure.${bw !== undefined && Number.isFinite(bw.clientCpuUsPerRecord + bw.nodesCpuUsPerRecord) ? ` At the best production-client row, ${(bw.clientCpuUsPerRecord + bw.nodesCpuUsPerRecord).toFixed(0)} µs of CPU per record put the CPU ceiling of ${m.cores} dedicated cores near ${(m.cores * 1e6 / (bw.clientCpuUsPerRecord + bw.nodesCpuUsPerRecord)).toFixed(0)} records/s (each record is received, checksummed, logged and sorted by six nodes).` : ""}
`;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
