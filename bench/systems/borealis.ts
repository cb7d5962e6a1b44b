/**
 * Borealis, the system under test: a local cluster started with `borealis up --data DIR --port PORT`
 * (the CLI compiled beside this module: `<out>/src/cli/main.js`), spoken to through `@libsql/client`
 * over HTTP — the Hrana endpoint our users use. The same cluster serves the lean-client row
 * (borealis-hrana.ts) when both run: `acquireCluster`.
 *
 * What the bench needs from Borealis (see bench/README.md, "What Borealis provides"):
 * - `GET /health` answers 200 once the endpoint serves SQL (the bench polls it after start);
 * - `GET /metrics` (optional, JSON, cumulative counters; shape in `BorealisMetrics` below, served by
 *   src/compute/writer-metrics.ts): redo bytes and records shipped, bytes on the writer↔storage
 *   network, the writer's PID, records above the storage nodes' materialized point. Without it the
 *   bench still measures throughput, latency, CPU and memory of the process tree, and reports the
 *   rest as "–".
 *
 * Start failures are reported, never hidden: the harness prints "Borealis: failed to start: <reason>"
 * in the terminal and the report. `BOREALIS_BENCH_COMMAND` (a JSON array: program and arguments, to
 * which `up --data DIR --port PORT` is appended) overrides the command, for the harness's own tests.
 */
import { createClient, type Client, type Transaction } from "@libsql/client";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { assert } from "../../src/core/assert.js";
import { packageVersion } from "./package-version.js";
import { sleep } from "../cleanup.js";
import { processExists, processTree, waitGone } from "../proc.js";
import { KV_DDL, multiRowInsert, recreate, rowValue } from "../workloads/workload.js";
import { HranaClient } from "./hrana-client.js";
import { freePort, freePortRange } from "../net.js";
import {
  SystemUnavailable, type BenchConnection, type BenchSystem, type ClientSpec, type PreparedLog, type RestartMeasurement,
  type Rows, type RunningSystem, type SqlArg, type SqlExecutor, type StartContext, type SystemCounters,
} from "./system.js";

const LIBSQL_CLIENT_VERSION = packageVersion("@libsql/client");

const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 30_000;
const RESTART_TIMEOUT_MS = 120_000;

// Restart logs (prepareTable, prepareLog): rows of ~400 bytes, ~9 to a 4 KiB page.
const LOG_MAX_ROWS = 200_000;
const LOG_VALUE_BYTES = 400;
const LOG_ROWS_PER_TXN = 200;
const LOG_CLIENTS = 4;
const LOG_MAX_TXNS_PER_ROUND = 20;
const LOG_SEED_ROWS_PER_INSERT = 500;
const LOG_ROWS_PER_PAGE = 9;

/** A deterministic LOG_VALUE_BYTES-byte value. */
function logValue(id: number): string {
  return rowValue(id).repeat(LOG_VALUE_BYTES / 100);
}

/**
 * Rows of restart_log for logs up to `records` long: a fifth as many (at most LOG_MAX_ROWS), so an
 * UPDATE of LOG_ROWS_PER_TXN random rows lands on as many different pages (1 M → 200 000 rows,
 * ~22 000 pages; 10 000 → 2 000 rows).
 */
function logTableRows(records: number): number {
  return Math.max(50, Math.min(LOG_MAX_ROWS, Math.round(records / 5)));
}

/** The JSON `GET /metrics` is expected to return. Every field optional; counters are cumulative. */
export interface BorealisMetrics {
  /** Redo bytes the writer has shipped (each record once, not × 6 segments). */
  readonly redoBytes?: number;
  readonly redoRecords?: number;
  /** Commits acknowledged to clients. */
  readonly commits?: number;
  /** Bytes sent + received on the writer's storage connections (all segments). */
  readonly storageNetBytes?: number;
  /**
   * Redo records above the storage nodes' materialized point, summed over the PGs (a gauge). Reported
   * beside the restart figure; its x axis is the redo written for the log (`redoRecords`), because
   * storage materializes continuously and this stays small whatever the log's length.
   */
  readonly recordsSinceMaterialization?: number | null;
  /**
   * Processes the bench should sample besides `up`'s process tree; the one with role "writer" is the
   * one the restart figure kills. Borealis lists its writer (the storage nodes and the control plane
   * are `up` and its children).
   */
  readonly processes?: ReadonlyArray<{ readonly role: string; readonly pid: number }>;
  /** Anything else numeric goes to results.json as it is. */
  readonly [key: string]: unknown;
}

function cliCommand(): string[] {
  const override = process.env.BOREALIS_BENCH_COMMAND;
  if (override !== undefined && override !== "") {
    const parsed = JSON.parse(override) as unknown;
    assert(Array.isArray(parsed) && parsed.length > 0 && parsed.every((s) => typeof s === "string"), "BOREALIS_BENCH_COMMAND must be a JSON array of strings");
    return parsed as string[];
  }
  const main = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
  if (!existsSync(main)) throw new SystemUnavailable(`the Borealis CLI is not built (${main} is missing)`);
  return [process.execPath, main];
}

async function getJson(url: string, timeoutMs: number): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: keep the text for the error message.
  }
  return { status: res.status, body };
}

// ---------------------------------------------------------------------------------------- connection

class LibsqlConnection implements BenchConnection {
  constructor(private readonly client: Client) {}

  async execute(sql: string, args: readonly SqlArg[] = []): Promise<Rows> {
    const rs = await this.client.execute({ sql, args: args as SqlArg[] });
    return rs.rows.map((r) => Array.from(r));
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    // "write" = BEGIN IMMEDIATE: the write lock is taken up front, as an application does when it
    // means to write (a deferred transaction would fail with SQLITE_BUSY at its first write instead).
    const tx: Transaction = await this.client.transaction("write");
    try {
      const value = await fn({
        execute: async (sql, args = []) => (await tx.execute({ sql, args: args as SqlArg[] })).rows.map((r) => Array.from(r)),
      });
      await tx.commit();
      return value;
    } catch (e) {
      await tx.rollback().catch(() => {});
      throw e;
    } finally {
      tx.close();
    }
  }

  isRetryable(error: unknown): boolean {
    const e = error as { code?: unknown; message?: unknown };
    const text = `${String(e.code ?? "")} ${String(e.message ?? "")}`;
    return /SQLITE_BUSY|SQLITE_LOCKED|database is locked/i.test(text);
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

// --------------------------------------------------------------------------------------------- server

async function startCluster(ctx: StartContext): Promise<RunningSystem> {
  const command = cliCommand();
  const dataDir = join(ctx.workDir, "borealis");
  mkdirSync(dataDir, { recursive: true });
  // Every port the cluster listens on is chosen free, so the bench never meets another cluster
  // (a developer's `npm start`, a test) on the default ports.
  const port = await freePort();
  const controlPlanePort = await freePort();
  const storageBasePort = await freePortRange(6);
  const upArgs = ["up", "--data", dataDir, "--port", String(port), "--control-plane-port", String(controlPlanePort), "--storage-base-port", String(storageBasePort)];
  const url = `http://127.0.0.1:${port}`;
  const logFile = join(ctx.workDir, "borealis.log");
  const logTail = (): string => {
    try {
      return readFileSync(logFile, "utf8").trim().split("\n").slice(-3).join(" | ");
    } catch {
      return "(no output)";
    }
  };

  interface Launched { child: ChildProcess; pid: number; unregister: () => void }
  const launch = (): Launched => {
    const fd = openSync(logFile, "a");
    const [program, ...args] = command;
    // Its own process group: the cluster's storage nodes and writer are stopped together, by group.
    const child = spawn(program!, [...args, ...upArgs], {
      stdio: ["ignore", fd, fd], detached: true, env: { ...process.env },
    });
    closeSync(fd);
    child.on("error", () => {});
    if (child.pid === undefined) throw new SystemUnavailable(`could not spawn ${program}`);
    const unregister = ctx.cleanup.addProcess("borealis up", child.pid, { signal: "SIGTERM", graceMs: STOP_TIMEOUT_MS, group: true });
    return { child, pid: child.pid, unregister };
  };
  const waitHealthy = async (l: Launched, timeoutMs: number): Promise<void> => {
    const deadline = performance.now() + timeoutMs;
    let last = "no answer yet";
    // Bounded by the deadline.
    for (;;) {
      if (l.child.exitCode !== null || l.child.signalCode !== null) {
        throw new SystemUnavailable(`\`borealis up\` exited (${l.child.exitCode ?? l.child.signalCode}) before /health answered: ${logTail()}`);
      }
      try {
        const r = await getJson(`${url}/health`, 2_000);
        if (r.status === 200) return;
        last = `/health answered ${r.status}: ${JSON.stringify(r.body).slice(0, 200)}`;
      } catch (e) {
        last = (e as Error).message;
      }
      if (performance.now() > deadline) throw new SystemUnavailable(`no healthy /health within ${timeoutMs} ms (${last}); ${logTail()}`);
      await sleep(50);
    }
  };

  let cluster = launch();
  ctx.log(`borealis starting: ${command.join(" ")} ${upArgs.join(" ")} (pid ${cluster.pid})`);
  try {
    await waitHealthy(cluster, START_TIMEOUT_MS);
  } catch (e) {
    await stopGroup(cluster.pid);
    cluster.unregister();
    throw e;
  }

  const metrics = async (): Promise<BorealisMetrics | null> => {
    try {
      const r = await getJson(`${url}/metrics`, 2_000);
      return r.status === 200 && typeof r.body === "object" && r.body !== null ? (r.body as BorealisMetrics) : null;
    } catch {
      return null;
    }
  };
  const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
  const first = await metrics();
  const reported = await getJson(`${url}/version`, 2_000).then((r) => {
    const b = r.body as { version?: unknown } | null;
    return r.status === 200 && b !== null && typeof b === "object" && typeof b.version === "string" && b.version !== "unknown" ? b.version : null;
  }).catch(() => null);
  // Until the endpoint reports a release, the commit of the checkout is the version that matters.
  const version = reported !== null ? `Borealis ${reported}` : `Borealis (commit ${gitCommit()})`;
  const spec: ClientSpec = { system: "borealis", url };
  let lastRestartCheck: { id: number; k: number } | null = null;
  let restartSerial = 0;
  // restart_log, as built for the restart figure: its rows are 1…rows.
  let logTable: { rows: number } | null = null;
  /** (Re)creates restart_log with `rows` rows of LOG_VALUE_BYTES, 500 per INSERT, from every client at once. */
  const buildLogTable = async (clients: readonly HranaClient[], rows: number, deadline: number): Promise<void> => {
    await recreate(clients[0]!, "restart_log", KV_DDL.replace("TABLE kv", "TABLE restart_log"));
    let next = 1;
    await Promise.all(clients.map(async (c) => {
      // Bounded by `rows` (and the deadline).
      while (next <= rows && performance.now() < deadline) {
        const first = next;
        const n = Math.min(LOG_SEED_ROWS_PER_INSERT, rows - first + 1);
        next += n;
        const args: SqlArg[] = [];
        for (let id = first; id < first + n; id++) args.push(id, id % 1000, logValue(id));
        await c.execute(multiRowInsert("restart_log", ["id", "k", "v"], n), args);
      }
    }));
    // Rows 1…next−1 are all in: every INSERT the loop started has finished.
    logTable = { rows: Math.max(1, next - 1) };
  };
  let stopped = false;

  return {
    version,
    settings: {
      endpoint: url,
      command: `${command.map((c) => c.replace(process.cwd() + "/", "")).join(" ")} up --data <tmp> --port ${port} …`,
      metrics: first === null ? "GET /metrics not available: redo and network figures not measured" : "GET /metrics",
    },
    clientSpec: spec,
    async serverPids() {
      const m = await metrics();
      const pids = (m?.processes ?? []).map((p) => p.pid).filter((p) => processExists(p));
      // The `up` process and its descendants; listed PIDs outside that tree are added.
      return [cluster.pid, ...pids];
    },
    async counters(): Promise<SystemCounters> {
      const m = await metrics();
      if (m === null) return { logBytes: null, logRecords: null, internalNetBytes: null };
      const extra: Record<string, number> = {};
      for (const [k, v] of Object.entries(m)) if (typeof v === "number" && Number.isFinite(v)) extra[k] = v;
      return { logBytes: num(m.redoBytes), logRecords: num(m.redoRecords), internalNetBytes: num(m.storageNetBytes), extra };
    },
    restart: {
      async prepareTable(longestLog: number, budgetMs: number): Promise<string> {
        const t0 = performance.now();
        const clients = Array.from({ length: LOG_CLIENTS }, () => new HranaClient(url));
        try {
          await buildLogTable(clients, logTableRows(longestLog), t0 + budgetMs);
        } finally {
          await Promise.all(clients.map((c) => c.close()));
        }
        return `restart_log: ${logTable!.rows.toLocaleString("en-US")} rows of ${LOG_VALUE_BYTES} B, loaded in ${Math.round(performance.now() - t0)} ms`;
      },
      async prepareLog(records: number, budgetMs: number, progress: (done: number) => void): Promise<PreparedLog> {
        const deadline = performance.now() + budgetMs;
        // The x axis is the log written, not `recordsSinceMaterialization`: Borealis has no
        // checkpoint, and its storage nodes materialize continuously in the background, so the
        // records above their materialized point stay small whatever the log's length (a log "since
        // the last materialization" of 100 000 records cannot be built). That backlog at the crash
        // is reported beside the figure (recordsSource).
        //
        // Built fast (a million records in minutes, not the hour single-row commits would take):
        // autocommit UPDATEs of `perTxn` random rows of restart_log each, whose rows are ~9 to a
        // page, so every commit dirties ~perTxn pages: ~perTxn redo records. From LOG_CLIENTS
        // connections at once, in rounds; after each round GET /metrics says how far the log is,
        // and the rounds shrink as the target nears, so the log ends within a transaction or two of
        // it. The table is built once for the whole figure (prepareTable, sized for the longest
        // log), before any log is counted: every point restarts on the same database, and differs
        // only in the log.
        const perTxn = Math.max(1, Math.min(LOG_ROWS_PER_TXN, Math.round(records / 50)));
        // The lean client: the log is built from the harness, and its CPU is better left to the server.
        const clients = Array.from({ length: LOG_CLIENTS }, () => new HranaClient(url));
        try {
          if (logTable === null) await buildLogTable(clients, logTableRows(records), deadline);
          const tableRows = logTable!.rows;
          const base = await metrics();
          const delta = (m: BorealisMetrics | null, key: "redoRecords" | "redoBytes"): number | null =>
            num(m?.[key]) !== null && num(base?.[key]) !== null && num(m![key])! >= num(base![key])! ? num(m![key])! - num(base![key])! : null;
          const since = (m: BorealisMetrics | null): number | null => delta(m, "redoRecords");
          let rows = 0;
          let estimate = 0; // pages touched, the count without /metrics
          let commits = 0;
          let counted = 0;
          const update = async (c: HranaClient): Promise<void> => {
            const ids = Array.from({ length: Math.min(perTxn, tableRows) }, () => 1 + Math.floor(Math.random() * tableRows));
            await c.execute(`UPDATE restart_log SET k = k + 1 WHERE id IN (${ids.map(() => "?").join(", ")})`, ids);
            rows += ids.length;
            estimate += new Set(ids.map((id) => Math.floor((id - 1) / LOG_ROWS_PER_PAGE))).size;
            commits++;
          };
          // Bounded by the deadline (and by the target: every round commits at least one transaction).
          // A round is up to LOG_CLIENTS connections committing `each` transactions one after the
          // other, sized to half of what is left: long rounds far from the target (GET /metrics, which
          // asks every storage node, is then rare), single transactions near it.
          while (counted < records && performance.now() < deadline) {
            const perCommit = commits === 0 ? Math.min(perTxn, tableRows / LOG_ROWS_PER_PAGE) : Math.max(1, counted / commits);
            const left = Math.ceil((records - counted) / perCommit);
            const ops = Math.max(1, Math.min(LOG_CLIENTS, left));
            const each = Math.max(1, Math.min(LOG_MAX_TXNS_PER_ROUND, Math.floor(left / (2 * ops))));
            await Promise.all(clients.slice(0, ops).map(async (c) => {
              for (let i = 0; i < each && performance.now() < deadline; i++) await update(c);
            }));
            counted = since(await metrics()) ?? estimate;
            progress(counted);
          }
          // The last committed write, which the restarted writer must serve.
          const marker = -1 - restartSerial++;
          await clients[0]!.execute("UPDATE restart_log SET k = ? WHERE id = 1", [marker]);
          lastRestartCheck = { id: 1, k: marker };
          const m = await metrics();
          const exact = since(m);
          const backlog = num(m?.recordsSinceMaterialization);
          return {
            records: exact ?? estimate + 1,
            recordsSource: exact === null
              ? "estimate (one redo record per 4 KiB page each commit touched; no /metrics)"
              : `GET /metrics: redo records written${backlog === null ? "" : `; ${backlog} above the storage nodes' materialized point at the crash`}`,
            bytes: delta(m, "redoBytes"),
            rows: rows + 1,
          };
        } finally {
          await Promise.all(clients.map((c) => c.close()));
        }
      },
      async crashAndRestart(): Promise<RestartMeasurement> {
        const check = lastRestartCheck;
        assert(check !== null, "borealis: prepareLog before crashAndRestart");
        const m = await metrics();
        const writer = m?.processes?.find((p) => p.role === "writer") ?? findWriter(cluster.pid);
        let method: string;
        let t0: number;
        if (writer !== undefined && processExists(writer.pid)) {
          // The cluster's supervisor brings the writer back; the endpoint stays the same.
          process.kill(writer.pid, "SIGKILL");
          await waitGone(writer.pid, 10_000);
          t0 = performance.now();
          method = "writer process SIGKILLed; `borealis up`'s supervisor starts a new one after 0.1 s (src/cli/local-cluster.ts), which recovers the volume; " +
            "time until the same endpoint reads the last committed row (the delay, process start, recovery and the first read included)";
        } else {
          // No writer PID published: crash the whole local cluster and start it again on its data.
          await stopGroup(cluster.pid, "SIGKILL");
          cluster.unregister();
          t0 = performance.now();
          cluster = launch();
          method = "whole `borealis up` process group SIGKILLed and restarted on the same data (no writer pid in /metrics); time until it reads the last committed row";
        }
        const client = createClient({ url });
        try {
          const deadline = t0 + RESTART_TIMEOUT_MS;
          // Bounded by the deadline; polls every 5 ms.
          for (;;) {
            try {
              const rs = await client.execute({ sql: "SELECT k FROM restart_log WHERE id = ?", args: [check.id] });
              if (rs.rows.length !== 1 || Number(rs.rows[0]![0]) !== check.k) {
                throw new Error(`the last commit (row ${check.id}: k = ${check.k}) lost after the crash: read ${JSON.stringify(rs.rows.map((r) => Array.from(r)))}`);
              }
              break;
            } catch (e) {
              if (/lost after the crash/.test((e as Error).message)) throw e;
              if (performance.now() > deadline) throw new Error(`borealis did not serve within ${RESTART_TIMEOUT_MS} ms after the crash: ${(e as Error).message}`);
            }
            await sleep(5);
          }
        } finally {
          client.close();
        }
        const restartMs = performance.now() - t0;
        // The new writer's own account of its start-up (src/compute/writer.ts), to tell a slow process
        // start from a slow recovery.
        const health = await getJson(`${url}/health`, 2_000).catch(() => null);
        const startup = (health?.body as { startup?: Record<string, unknown>; recovery?: Record<string, unknown> } | null)?.startup;
        const recovery = (health?.body as { recovery?: Record<string, unknown> } | null)?.recovery;
        const detail = startup === undefined ? undefined
          : `writer start-up ${String(startup.totalMs)} ms: volume ${String(startup.volumeMs)}, recovery ${String(startup.recoveryMs)}` +
            `${typeof recovery?.recordsExamined === "number" ? ` (${recovery.recordsExamined} records examined)` : ""}, engine ${String(startup.engineMs)} (GET /health)`;
        return { restartMs, method, ...(detail === undefined ? {} : { detail }) };
      },
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopGroup(cluster.pid);
      cluster.unregister();
    },
  };
}

/**
 * One cluster for both Borealis client models in a run: "Borealis" (@libsql/client) and "Borealis
 * (lean Hrana client)" (borealis-hrana.ts) are the same server seen through two clients, so they
 * share one `borealis up` — started by whichever asks first, stopped when the last lets go. Their
 * runs never overlap (the harness measures one system at a time), so the counters of a window are
 * that window's; the two rows share tables, and the harness's insert ids are unique across systems.
 * The shared `restart` object lets the harness measure the restart figure once per cluster. A failed
 * start is remembered: the second row reports the same reason instead of waiting for it again.
 */
let shared: { readonly running: Promise<RunningSystem>; users: number } | null = null;

export async function acquireCluster(ctx: StartContext): Promise<RunningSystem> {
  if (shared === null) shared = { running: startCluster(ctx), users: 0 };
  const mine = shared;
  const cluster = await mine.running;
  mine.users++;
  let released = false;
  return {
    ...cluster,
    async stop() {
      if (released) return;
      released = true;
      if (--mine.users > 0) return;
      if (shared === mine) shared = null;
      await cluster.stop();
    },
  };
}

export const borealisSystem: BenchSystem = {
  name: "borealis",
  title: "Borealis",
  clientModel: "network",
  clientLibrary: `@libsql/client ${LIBSQL_CLIENT_VERSION} (HTTP)`,

  async start(ctx: StartContext): Promise<RunningSystem> {
    const cluster = await acquireCluster(ctx);
    return { ...cluster, settings: { ...cluster.settings, client: "@libsql/client over HTTP (Hrana v2, JSON): what applications use" } };
  },

  async connect(spec: ClientSpec): Promise<BenchConnection> {
    assert(spec.system === "borealis" && typeof spec.url === "string", "borealis: bad client spec");
    return new LibsqlConnection(createClient({ url: spec.url }));
  },
};

/** `abc1234` or `abc1234+dirty` for the checkout this bench runs from; "unknown" outside git. */
function gitCommit(): string {
  const cwd = fileURLToPath(new URL(".", import.meta.url));
  const sha = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd, encoding: "utf8" });
  if (sha.status !== 0) return "unknown";
  const dirty = spawnSync("git", ["status", "--porcelain", "--untracked-files=no", "--", "src"], { cwd, encoding: "utf8" });
  return `${sha.stdout.trim()}${dirty.status === 0 && dirty.stdout.trim() !== "" ? "+dirty src" : ""}`;
}

/** The writer child of `borealis up` (`main.js writer …`), found in its process tree. */
function findWriter(upPid: number): { role: string; pid: number } | undefined {
  for (const p of processTree([upPid])) {
    if (p.pid === upPid) continue;
    try {
      const argv = readFileSync(`/proc/${p.pid}/cmdline`, "utf8").split("\0");
      if (argv[2] === "writer") return { role: "writer", pid: p.pid };
    } catch {
      // Gone already.
    }
  }
  return undefined;
}

/** Stops the process group led by `pid` (we started it detached): `signal`, then SIGKILL. */
async function stopGroup(pid: number, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  const kill = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-pid, sig);
    } catch {
      // Already gone.
    }
  };
  kill(signal);
  if (!(await waitGone(pid, STOP_TIMEOUT_MS))) kill("SIGKILL");
  await waitGone(pid, 5_000);
  // Members of the group that outlive its leader (storage nodes) get the same treatment.
  kill("SIGKILL");
}
