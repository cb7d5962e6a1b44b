/**
 * One measured run: fork the load generators, wait until every client is connected, start them
 * together, sample the server and the load generators at the edges of the measured window, collect
 * and merge what the load generators measured, and turn it into the figures of the report.
 *
 * Figures (all over the measured window, after warm-up):
 * - ops/s = operations completed in the window ÷ window length (fixed work: ÷ time to finish);
 * - latency percentiles from the merged log-linear histogram of every client;
 * - server CPU per op = CPU time of the server's process tree (from /proc) ÷ ops; the same for the
 *   load generators ("client CPU"); for an in-process system the load generator *is* the server;
 * - log bytes per commit = the system's own log counter (PostgreSQL WAL LSN distance, Borealis redo;
 *   for the in-process SQLite, WAL frames counted by its connection in the load generator) ÷ commits;
 * - network bytes per op = bytes on the load generators' client sockets ÷ ops;
 * - peak memory = the largest VmHWM among the server's processes (reset at the start of the run), and
 *   the sum over them (which counts shared memory such as PostgreSQL's shared_buffers once per process).
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { assert } from "../src/core/assert.js";
import type { Cleanup } from "./cleanup.js";
import { Histogram } from "./histogram.js";
import type { FromLoadgen, InitMessage, ResultMessage, ToLoadgen } from "./loadgen.js";
import { peakMemory, resetPeakMemory, snapshotTree, type ProcessPeak, type TreeSnapshot } from "./proc.js";
import type { BenchSystem, RunningSystem, SystemCounters } from "./systems/system.js";
import type { Workload, WorkloadParams } from "./workloads/workload.js";

const LOADGEN_PATH = fileURLToPath(new URL("./loadgen.js", import.meta.url));
const READY_TIMEOUT_MS = 60_000;
/** Time between sending `go` and the clients starting, so every load generator starts together. */
const GO_LEAD_MS = 30;

export interface RunSpec {
  readonly system: BenchSystem;
  readonly running: RunningSystem;
  readonly workload: Workload;
  readonly params: WorkloadParams;
  readonly clients: number;
  readonly loadgenProcesses: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Fixed-work runs: give up after this long. */
  readonly deadlineMs: number;
  readonly idBase: number;
  readonly seed: number;
  readonly cleanup: Cleanup;
}

export interface LatencyFigures {
  readonly p50Us: number;
  readonly p95Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
  readonly maxUs: number;
  readonly meanUs: number;
}

export interface MemoryFigures {
  /** VmHWM of the largest process. */
  readonly largestPeakRssBytes: number | null;
  readonly largestProcess: string | null;
  /** Σ VmHWM over the processes (shared pages counted in each). */
  readonly sumPeakRssBytes: number | null;
  readonly processes: number;
  /** The largest processes and their peaks (at most 12), for results.json. */
  readonly top: readonly ProcessPeak[];
}

export interface RunResult {
  readonly ok: boolean;
  readonly error: string | null;
  readonly errorSamples: readonly string[];
  readonly elapsedMs: number;
  readonly ops: number;
  readonly opsPerSec: number;
  readonly errors: number;
  readonly retries: number;
  readonly commits: number;
  readonly rows: number;
  readonly rowsPerSec: number | null;
  readonly latency: LatencyFigures;
  readonly serverCpuPerOpUs: number | null;
  readonly clientCpuPerOpUs: number | null;
  /** Server CPU ÷ wall time: 1.0 = one core busy. */
  readonly serverCores: number | null;
  readonly logBytesPerCommit: number | null;
  readonly logRecordsPerCommit: number | null;
  readonly internalNetBytesPerCommit: number | null;
  readonly netBytesPerOp: number | null;
  readonly server: MemoryFigures;
  readonly client: MemoryFigures;
  readonly loadgenProcesses: number;
  readonly extraCounters: Readonly<Record<string, number>>;
  /** Highest insert sequence used (for the next run's idBase). */
  readonly maxSeq: number;
  /** Kept in memory for CDFs; not written to JSON per run. */
  readonly histogram: Histogram;
}

interface Edge {
  readonly wallMs: number;
  readonly server: TreeSnapshot;
  readonly client: TreeSnapshot;
  readonly counters: SystemCounters | null;
}

function memoryOf(roots: readonly number[]): MemoryFigures {
  const peaks = peakMemory(roots);
  if (peaks.length === 0) return { largestPeakRssBytes: null, largestProcess: null, sumPeakRssBytes: null, processes: 0, top: [] };
  return {
    largestPeakRssBytes: peaks[0]!.peakRssBytes,
    largestProcess: peaks[0]!.comm,
    sumPeakRssBytes: peaks.reduce((s, p) => s + p.peakRssBytes, 0),
    processes: peaks.length,
    top: peaks.slice(0, 12),
  };
}

function perUnit(delta: number | null, units: number): number | null {
  return delta === null || units <= 0 ? null : delta / units;
}

function counterDelta(a: SystemCounters | null, b: SystemCounters | null, key: "logBytes" | "logRecords" | "internalNetBytes"): number | null {
  const x = a?.[key] ?? null;
  const y = b?.[key] ?? null;
  return x === null || y === null ? null : y - x;
}

/** Runs one (system, workload, clients) measurement. Never throws for a failed run: `ok: false`. */
export async function runOnce(spec: RunSpec): Promise<RunResult> {
  const inProcess = spec.system.clientModel === "in-process";
  assert(!inProcess || spec.clients === 1, "in-process systems run with one client");
  const procs = Math.max(1, Math.min(spec.clients, spec.loadgenProcesses));
  const children: ChildProcess[] = [];
  const unregister: Array<() => void> = [];
  const results: ResultMessage[] = [];
  const reported = new Set<number>();
  const failures: string[] = [];
  const fixed = spec.workload.kind === "fixed";

  try {
    // Fork and initialise every load generator, clients dealt round-robin.
    const readies: Array<Promise<void>> = [];
    const resultWaits: Array<Promise<void>> = [];
    for (let p = 0; p < procs; p++) {
      const child = fork(LOADGEN_PATH, [], { stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "json" });
      assert(child.pid !== undefined, "fork returned no pid");
      children.push(child);
      unregister.push(spec.cleanup.addProcess("load generator", child.pid, { signal: "SIGTERM", graceMs: 2_000 }));
      const clientIndexes: number[] = [];
      for (let c = p; c < spec.clients; c += procs) clientIndexes.push(c);
      let readyResolve!: () => void;
      let readyReject!: (e: Error) => void;
      readies.push(new Promise<void>((res, rej) => { readyResolve = res; readyReject = rej; }));
      resultWaits.push(new Promise<void>((resolve) => {
        child.on("message", (m: FromLoadgen) => {
          if (m.type === "ready") readyResolve();
          else if (m.type === "failed") {
            failures.push(m.error);
            readyReject(new Error(m.error));
            resolve();
          } else if (m.type === "result") {
            results.push(m);
            reported.add(child.pid!);
            resolve();
          }
        });
        child.on("exit", (code, signal) => {
          const why = `load generator exited (${signal ?? code}) before reporting`;
          readyReject(new Error(why));
          if (results.length + failures.length < children.length) failures.push(why);
          resolve();
        });
      }));
      const init: InitMessage = {
        type: "init", system: spec.system.name, spec: spec.running.clientSpec, workload: spec.workload.name,
        params: spec.params, clientIndexes, totalClients: spec.clients, idBase: spec.idBase, seed: spec.seed,
      };
      child.send(init satisfies ToLoadgen);
    }
    await withTimeout(Promise.all(readies), READY_TIMEOUT_MS, "load generators did not connect");

    const serverRoots = inProcess ? children.map((c) => c.pid!) : await spec.running.serverPids();
    const clientRoots = children.map((c) => c.pid!);
    resetPeakMemory([...serverRoots, ...clientRoots]);
    const edge = async (): Promise<Edge> => ({
      wallMs: Date.now(),
      server: snapshotTree(serverRoots),
      client: snapshotTree(clientRoots),
      counters: await spec.running.counters().catch(() => null),
    });

    const goAt = Date.now() + GO_LEAD_MS;
    const measureStartMs = fixed ? goAt : goAt + spec.warmupMs;
    const measureEndMs = fixed ? goAt + spec.deadlineMs : measureStartMs + spec.durationMs;
    for (const c of children) c.send({ type: "go", measureStartMs, measureEndMs } satisfies ToLoadgen);

    await sleepUntil(measureStartMs);
    const start = await edge();
    let end: Edge;
    let memServer: MemoryFigures;
    let memClient: MemoryFigures;
    if (fixed) {
      await Promise.all(resultWaits);
      end = await edge();
      memServer = memoryOf(serverRoots);
      memClient = memoryOf(clientRoots);
    } else {
      await sleepUntil(measureEndMs);
      end = await edge();
      memServer = memoryOf(serverRoots);
      memClient = memoryOf(clientRoots);
      await withTimeout(Promise.all(resultWaits), 60_000, "load generators did not report");
    }
    for (const c of children) if (c.connected) c.send({ type: "exit" } satisfies ToLoadgen);

    // Merge what the load generators measured.
    const histogram = new Histogram();
    let ops = 0, errors = 0, retries = 0, commits = 0, rows = 0, netBytes = 0, maxSeq = -1, elapsedMs = 0;
    const samples = new Set<string>(failures);
    let done = true;
    for (const r of results) {
      histogram.merge(r.histogram);
      ops += r.ops; errors += r.errors; retries += r.retries; commits += r.commits; rows += r.rows;
      netBytes += r.netBytes; maxSeq = Math.max(maxSeq, r.maxSeq); elapsedMs = Math.max(elapsedMs, r.elapsedMs);
      done &&= r.done;
      for (const s of r.errorSamples) samples.add(s);
    }
    const okRun = failures.length === 0 && results.length === procs && ops > 0 && done;
    const seconds = Math.max(elapsedMs, 1) / 1000;
    const serverCpu = end.server.cpuUs - start.server.cpuUs;
    const clientCpu = end.client.cpuUs - start.client.cpuUs;
    const wallUs = (end.wallMs - start.wallMs) * 1000;
    // Log counted by the system, else by its connections inside the load generators (in-process).
    const sumOrNull = (f: (r: ResultMessage) => number | null): number | null =>
      results.every((r) => f(r) !== null) && results.length > 0 ? results.reduce((s, r) => s + f(r)!, 0) : null;
    const logBytes = counterDelta(start.counters, end.counters, "logBytes") ?? sumOrNull((r) => r.logBytes);
    const logRecords = counterDelta(start.counters, end.counters, "logRecords") ?? sumOrNull((r) => r.logRecords);
    const extra: Record<string, number> = {};
    for (const [k, v] of Object.entries(end.counters?.extra ?? {})) {
      const before = start.counters?.extra?.[k];
      if (before !== undefined) extra[k] = v - before;
    }
    return {
      ok: okRun,
      error: okRun ? null : (failures[0] ?? (ops === 0 ? "no operation completed" : !done ? "the work did not finish" : "incomplete results")),
      errorSamples: [...samples],
      elapsedMs,
      ops,
      opsPerSec: ops / seconds,
      errors,
      retries,
      commits,
      rows,
      rowsPerSec: rows > 0 ? rows / seconds : null,
      latency: {
        p50Us: histogram.quantileUs(0.5), p95Us: histogram.quantileUs(0.95), p99Us: histogram.quantileUs(0.99),
        p999Us: histogram.quantileUs(0.999), maxUs: histogram.toData().maxUs, meanUs: histogram.meanUs(),
      },
      serverCpuPerOpUs: perUnit(serverCpu, ops),
      clientCpuPerOpUs: inProcess ? null : perUnit(clientCpu, ops),
      serverCores: wallUs > 0 ? serverCpu / wallUs : null,
      logBytesPerCommit: perUnit(logBytes, commits),
      logRecordsPerCommit: perUnit(logRecords, commits),
      internalNetBytesPerCommit: perUnit(counterDelta(start.counters, end.counters, "internalNetBytes"), commits),
      netBytesPerOp: inProcess ? null : perUnit(netBytes, ops),
      server: memServer,
      client: inProcess ? { largestPeakRssBytes: null, largestProcess: null, sumPeakRssBytes: null, processes: 0, top: [] } : memClient,
      loadgenProcesses: procs,
      extraCounters: extra,
      maxSeq,
      histogram,
    };
  } catch (e) {
    return failedRun((e as Error).message, failures, procs);
  } finally {
    for (const c of children) {
      // A load generator that never reported (failed start, harness error) is cut loose: it exits on
      // IPC disconnect. One that reported got `exit` and closes its connections itself.
      if (c.connected && !reported.has(c.pid!)) c.disconnect();
      if (c.exitCode === null && c.signalCode === null) {
        await withTimeout(new Promise<void>((r) => c.once("exit", () => r())), 10_000, "").catch(() => c.kill("SIGKILL"));
      }
    }
    for (const u of unregister) u();
  }
}

export function failedRun(error: string, samples: readonly string[], procs: number): RunResult {
  const none: MemoryFigures = { largestPeakRssBytes: null, largestProcess: null, sumPeakRssBytes: null, processes: 0, top: [] };
  return {
    ok: false, error, errorSamples: samples, elapsedMs: 0, ops: 0, opsPerSec: 0, errors: 0, retries: 0, commits: 0, rows: 0,
    rowsPerSec: null, latency: { p50Us: 0, p95Us: 0, p99Us: 0, p999Us: 0, maxUs: 0, meanUs: 0 },
    serverCpuPerOpUs: null, clientCpuPerOpUs: null, serverCores: null, logBytesPerCommit: null, logRecordsPerCommit: null,
    internalNetBytesPerCommit: null, netBytesPerOp: null, server: none, client: none,
    loadgenProcesses: procs, extraCounters: {}, maxSeq: -1, histogram: new Histogram(),
  };
}

async function sleepUntil(wallMs: number): Promise<void> {
  const ms = wallMs - Date.now();
  if (ms > 0) await new Promise((r) => setTimeout(r, ms));
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} (after ${ms} ms)`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
