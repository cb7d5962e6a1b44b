/**
 * The load generator: a child process (forked by the harness) that drives some of a run's clients
 * against one system and reports what it measured over IPC. Clients live in separate processes from
 * the harness and from the servers, so generating load does not take CPU from the process measured
 * (except for the in-process SQLite bound, where the engine is the load generator).
 *
 * Protocol (each message a JSON object with `type`):
 *   harness → init   { system, spec, workload, params, clientIndexes, totalClients, idBase, seed }
 *   loadgen → ready  once every client is connected
 *   harness → go     { measureStartMs, measureEndMs } (wall clock, Date.now()): clients start at once;
 *                    operations that complete inside [start, end) are counted, the rest is warm-up.
 *                    Fixed-work runs (bulk load) get start = now and end = a deadline: every
 *                    operation counts and the run ends when the work is done.
 *   loadgen → result { ops, errors, retries, commits, rows, histogram, netBytes, elapsedMs, … }
 *   harness → exit   the loadgen closes its connections and exits. (It also exits if the harness
 *                    goes away: IPC disconnect.)
 *
 * Every loop is bounded by the run's end time; in-flight operations get `DRAIN_TIMEOUT_MS` to finish.
 */
import { Histogram, type HistogramData } from "./histogram.js";
import { SocketByteCounter } from "./net.js";
import { loadSystem } from "./systems/index.js";
import type { BenchConnection, ClientSpec, SystemName } from "./systems/system.js";
import { WORKLOADS } from "./workloads/index.js";
import { OpFailed, type WorkloadName, type WorkloadParams } from "./workloads/workload.js";

export interface InitMessage {
  readonly type: "init";
  readonly system: SystemName;
  readonly spec: ClientSpec;
  readonly workload: WorkloadName;
  readonly params: WorkloadParams;
  readonly clientIndexes: readonly number[];
  readonly totalClients: number;
  readonly idBase: number;
  readonly seed: number;
}
export interface GoMessage {
  readonly type: "go";
  readonly measureStartMs: number;
  readonly measureEndMs: number;
}
export interface ReadyMessage {
  readonly type: "ready";
}
export interface ResultMessage {
  readonly type: "result";
  readonly ops: number;
  readonly errors: number;
  readonly retries: number;
  readonly commits: number;
  readonly rows: number;
  readonly histogram: HistogramData;
  /** Bytes on this process's client sockets during the measured window. */
  readonly netBytes: number;
  /** Measured time: the window (timed) or start → last operation done (fixed work). */
  readonly elapsedMs: number;
  readonly maxSeq: number;
  /** Log written by the clients' connections in the window (in-process engines); null if not counted. */
  readonly logBytes: number | null;
  readonly logRecords: number | null;
  readonly errorSamples: readonly string[];
  /** Fixed work: every client finished its share. */
  readonly done: boolean;
}
export interface FailedMessage {
  readonly type: "failed";
  readonly error: string;
}
export type FromLoadgen = ReadyMessage | ResultMessage | FailedMessage;
export type ToLoadgen = InitMessage | GoMessage | { readonly type: "exit" };

const DRAIN_TIMEOUT_MS = 30_000;
const MAX_ERROR_SAMPLES = 5;
/** A fixed-work client gives up after this many failures in a row (the server is gone). */
const MAX_CONSECUTIVE_ERRORS = 50;

/** mulberry32: a tiny seeded PRNG, so each client's key sequence is reproducible. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function send(message: FromLoadgen): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined || !process.connected) return resolve();
    process.send(message, () => resolve());
  });
}

function errorText(e: unknown): string {
  const cause = e instanceof OpFailed ? e.cause : e;
  const code = (cause as { code?: unknown }).code;
  const msg = cause instanceof Error ? cause.message : String(cause);
  return (typeof code === "string" && !msg.includes(code) ? `${code}: ${msg}` : msg).slice(0, 300);
}

async function main(): Promise<void> {
  const init = await new Promise<InitMessage>((resolve) => {
    process.once("message", (m: ToLoadgen) => {
      if (m.type === "init") resolve(m);
    });
  });
  const system = await loadSystem(init.system);
  const workload = WORKLOADS[init.workload];
  const counter = new SocketByteCounter();
  const conns: BenchConnection[] = [];
  try {
    for (let i = 0; i < init.clientIndexes.length; i++) conns.push(await system.connect(init.spec));
  } catch (e) {
    await send({ type: "failed", error: `connect: ${errorText(e)}` });
    await Promise.all(conns.map((c) => c.close().catch(() => {})));
    process.exit(1);
  }
  const ops = init.clientIndexes.map((clientIndex, i) => workload.clientOp({
    conn: conns[i]!,
    params: init.params,
    clientIndex,
    totalClients: init.totalClients,
    idBase: init.idBase,
    random: seededRandom(init.seed * 1000 + clientIndex),
  }));

  const goPromise = new Promise<GoMessage>((resolve) => {
    process.on("message", (m: ToLoadgen) => {
      if (m.type === "go") resolve(m);
    });
  });
  await send({ type: "ready" });
  const go = await goPromise;

  const fixed = workload.kind === "fixed";
  const histogram = new Histogram();
  let count = 0;
  let errors = 0;
  let retries = 0;
  let commits = 0;
  let rows = 0;
  let lastDoneMs = 0;
  const samples = new Set<string>();
  let netAtStart: number | null = null;
  let netAtEnd: number | null = null;
  const logTotals = (): { bytes: number; records: number } | null => {
    let bytes = 0, records = 0;
    for (const c of conns) {
      const l = c.logCounters?.();
      if (l === undefined) return null;
      bytes += l.bytes;
      records += l.records;
    }
    return { bytes, records };
  };
  let logAtStart = logTotals();
  let logAtEnd: ReturnType<typeof logTotals> = null;
  const startTimer = setTimeout(() => {
    netAtStart = counter.total();
    logAtStart = logTotals();
  }, Math.max(0, go.measureStartMs - Date.now()));
  const endTimer = setTimeout(() => {
    netAtEnd = counter.total();
    logAtEnd = logTotals();
  }, Math.max(0, go.measureEndMs - Date.now()));

  let allDone = true;
  const clientLoop = async (i: number): Promise<void> => {
    const op = ops[i]!;
    let consecutive = 0;
    // Bounded by the run's end time.
    while (Date.now() < go.measureEndMs) {
      const t0 = performance.now();
      try {
        const outcome = await op.run();
        const latencyUs = (performance.now() - t0) * 1000;
        consecutive = 0;
        const now = Date.now();
        if (now >= go.measureStartMs && now < go.measureEndMs) {
          if (outcome.done === true && (outcome.rows ?? 0) === 0) return;
          count++;
          histogram.record(latencyUs);
          commits += outcome.commits;
          retries += outcome.retries;
          rows += outcome.rows ?? 0;
          lastDoneMs = now;
        }
        if (outcome.done === true) return;
      } catch (e) {
        const now = Date.now();
        if (now >= go.measureStartMs && now < go.measureEndMs) {
          errors++;
          if (e instanceof OpFailed) retries += e.retries;
          if (samples.size < MAX_ERROR_SAMPLES) samples.add(errorText(e));
        }
        if (fixed && ++consecutive >= MAX_CONSECUTIVE_ERRORS) {
          allDone = false;
          return;
        }
        // Do not spin on a failing server.
        await new Promise((r) => setTimeout(r, 1));
      }
    }
    if (fixed) allDone = false; // deadline reached with work left
  };
  // Fixed work is timed from measureStartMs: starting before it would leave a short load (SQLite's
  // 10,000 rows take ~20 ms) entirely outside the window, with nothing counted.
  if (fixed) await new Promise((r) => setTimeout(r, Math.max(0, go.measureStartMs - Date.now())));
  const loops = Promise.all(ops.map((_, i) => clientLoop(i)));
  const drained = await Promise.race([
    loops.then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(false), Math.max(0, go.measureEndMs - Date.now()) + DRAIN_TIMEOUT_MS)),
  ]);
  if (!drained) samples.add(`operations still in flight ${DRAIN_TIMEOUT_MS} ms after the end of the run`);
  clearTimeout(startTimer);
  clearTimeout(endTimer);
  const endNet = netAtEnd ?? counter.total();
  const startNet = netAtStart ?? 0;
  logAtEnd ??= logTotals();
  const elapsedMs = fixed ? Math.max(1, lastDoneMs - go.measureStartMs) : go.measureEndMs - go.measureStartMs;

  await send({
    type: "result",
    ops: count,
    errors,
    retries,
    commits,
    rows,
    histogram: histogram.toData(),
    netBytes: Math.max(0, endNet - startNet),
    elapsedMs,
    maxSeq: Math.max(-1, ...ops.map((o) => o.maxSeq())),
    logBytes: logAtStart === null || logAtEnd === null ? null : logAtEnd.bytes - logAtStart.bytes,
    logRecords: logAtStart === null || logAtEnd === null ? null : logAtEnd.records - logAtStart.records,
    errorSamples: [...samples],
    done: fixed ? allDone && drained : true,
  });
  await new Promise<void>((resolve) => {
    process.on("message", (m: ToLoadgen) => {
      if (m.type === "exit") resolve();
    });
    process.on("disconnect", () => resolve());
  });
  await Promise.race([Promise.all(conns.map((c) => c.close().catch(() => {}))), new Promise((r) => setTimeout(r, 5_000))]);
  counter.dispose();
  process.exit(0);
}

// The harness going away (crash, Ctrl-C) must not leave load generators behind.
process.on("disconnect", () => setTimeout(() => process.exit(1), 100).unref());
process.on("SIGINT", () => process.exit(130));
main().catch(async (e) => {
  await send({ type: "failed", error: errorText(e) });
  process.exit(1);
});
