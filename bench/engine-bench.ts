/**
 * Micro-benchmark of the SQL engine through `SqlEngine` (sessions, workers, VFS, buffer pool, redo)
 * over a MemoryVolume with immediate durability: autocommit single-row INSERTs/s and point SELECTs/s
 * at 1 and 32 concurrent sessions, plus redo bytes per single-row commit.
 *
 *     node dist/bench/engine-bench.js [--seconds 3] [--readers N] [--cache-mb 256] [--rows 100000]
 *
 * It measures the engine alone: no network, no fsync (the storage cluster's durability latency adds to
 * each commit's acknowledgement, not to the writer's throughput, since commits are asynchronous).
 */
import { Engine } from "../src/compute/engine/engine.js";
import { MemoryVolume } from "../src/compute/memory-volume.js";
import type { SqlSession } from "../src/compute/sql-engine.js";
import { freshLsnState } from "../src/compute/volume-io.js";

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const seconds = flag("seconds", 3);
const rows = flag("rows", 100_000);
const readers = flag("readers", 0);
const cacheMb = flag("cache-mb", 256);

interface Outcome {
  readonly name: string;
  readonly sessions: number;
  readonly ops: number;
  readonly perSecond: number;
  readonly p50Us: number;
  readonly p99Us: number;
  /** CPU time of the whole process (all threads) per operation: steadier than wall time on a shared VM. */
  readonly cpuUsPerOp: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function measure(name: string, sessions: SqlSession[], op: (s: SqlSession, i: number) => Promise<unknown>): Promise<Outcome> {
  const latencies: number[] = [];
  let ops = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const deadline = start + seconds * 1000;
  await Promise.all(sessions.map(async (s, k) => {
    let i = k;
    while (performance.now() < deadline) {
      const t0 = performance.now();
      await op(s, i);
      latencies.push(performance.now() - t0);
      ops++;
      i += sessions.length;
    }
  }));
  const elapsed = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  latencies.sort((a, b) => a - b);
  return {
    name, sessions: sessions.length, ops,
    perSecond: Math.round(ops / elapsed),
    p50Us: Math.round(percentile(latencies, 0.5) * 1000),
    p99Us: Math.round(percentile(latencies, 0.99) * 1000),
    cpuUsPerOp: Math.round((cpu.user + cpu.system) / ops),
  };
}

async function main(): Promise<void> {
  const volume = new MemoryVolume({ pgPages: 16384, keepMtrs: false, retainVersions: 8 });
  const engine = await Engine.start({
    volume, lsnState: freshLsnState(), pgPages: 16384, cacheMb,
    maxSessions: 256,
    ...(readers > 0 ? { readers } : {}),
  });
  const setup = engine.openSession();
  await setup.execute({ sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER, v TEXT)" });
  await setup.executeScript(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${rows})
    INSERT INTO t SELECT i, i, printf('%052d', i) FROM n;`);
  const ins = await engine.openSession();
  const one = [ins];
  const many = Array.from({ length: 32 }, () => engine.openSession());
  const v = "x".repeat(52);

  const results: Outcome[] = [];
  const insert = (s: SqlSession, i: number) =>
    s.execute({ sql: "INSERT INTO t (k, v) VALUES (?, ?)", args: [{ type: "integer", value: BigInt(i) }, { type: "text", value: v }] });
  const select = (s: SqlSession, i: number) =>
    s.execute({ sql: "SELECT k, v FROM t WHERE id = ?", args: [{ type: "integer", value: BigInt(1 + ((i * 7919) % rows)) }] });

  const work = async (): Promise<string> => {
    const w = (await engine.stats()).writer;
    return `writer: ${w.requests} requests in ${w.batches} batches, ${(w.busyMs * 1000 / Math.max(1, w.requests)).toFixed(0)} µs busy per request`;
  };
  const v0 = volume.stats();
  results.push(await measure("autocommit INSERT", one, insert));
  process.stdout.write(`${await work()}\n`);
  const v1 = volume.stats();
  results.push(await measure("autocommit INSERT", many, insert));
  process.stdout.write(`${await work()}\n`);
  const v2 = volume.stats();
  // One session: every statement is its own commit. 32 sessions: group commit shares MTRs.
  const redoPerCommit = (v1.redoBytes - v0.redoBytes) / (v1.mtrs - v0.mtrs);
  const recordsPerCommit = (v1.records - v0.records) / (v1.mtrs - v0.mtrs);
  const insertsGrouped = results[1]!.ops;
  const redoPerGroupedInsert = (v2.redoBytes - v1.redoBytes) / insertsGrouped;
  const statementsPerMtr = insertsGrouped / (v2.mtrs - v1.mtrs);
  results.push(await measure("point SELECT", one, select));
  results.push(await measure("point SELECT", many, select));

  const stats = await engine.stats();
  for (const r of results) {
    process.stdout.write(`${r.name.padEnd(18)} sessions=${String(r.sessions).padStart(2)}  ${String(r.perSecond).padStart(7)}/s  p50 ${r.p50Us} µs  p99 ${r.p99Us} µs  cpu ${r.cpuUsPerOp} µs/op  (${r.ops} ops)\n`);
  }
  process.stdout.write(`redo per single-row INSERT commit (1 session): ${redoPerCommit.toFixed(1)} B, ${recordsPerCommit.toFixed(2)} records; ` +
    `32 sessions: ${redoPerGroupedInsert.toFixed(1)} B per INSERT, ${statementsPerMtr.toFixed(1)} INSERTs per MTR (group commit)\n`);
  process.stdout.write(`readers=${stats.readers.length} pool: ${JSON.stringify(stats.writer.pool)}\n`);
  process.stdout.write(`load average ${(await import("node:os")).loadavg().map((l) => l.toFixed(1)).join(" ")} on ${(await import("node:os")).availableParallelism()} CPUs\n`);
  process.stdout.write(`${JSON.stringify({ bench: "engine", seconds, rows, readers: stats.readers.length, results, redoPerCommit, redoPerGroupedInsert, statementsPerMtr })}\n`);
  await Promise.all([setup, ins, ...many].map((s) => s.close()));
  await engine.close();
}

await main();
