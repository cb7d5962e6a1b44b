/**
 * Borealis, the system under test: a local cluster started with `borealis up --data DIR --port PORT`
 * (the CLI compiled beside this module: `<out>/src/cli/main.js`), spoken to through `@libsql/client`
 * over HTTP — the Hrana endpoint our users use.
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
import { KV_DDL, recreate } from "../workloads/workload.js";
import { freePort, freePortRange } from "../net.js";
import {
  SystemUnavailable, type BenchConnection, type BenchSystem, type ClientSpec, type PreparedLog, type RestartMeasurement,
  type Rows, type RunningSystem, type SqlArg, type SqlExecutor, type StartContext, type SystemCounters,
} from "./system.js";

const LIBSQL_CLIENT_VERSION = packageVersion("@libsql/client");

const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 30_000;
const RESTART_TIMEOUT_MS = 120_000;

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

export const borealisSystem: BenchSystem = {
  name: "borealis",
  title: "Borealis",
  clientModel: "network",
  clientLibrary: `@libsql/client ${LIBSQL_CLIENT_VERSION} (HTTP)`,

  async start(ctx: StartContext): Promise<RunningSystem> {
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
    let lastRestartId = 0;
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
        async prepareLog(records: number, budgetMs: number, progress: (done: number) => void): Promise<PreparedLog> {
          const deadline = performance.now() + budgetMs;
          // Single-row commits from 16 concurrent connections until the writer reports `records` redo
          // records written for this log (or, without /metrics, an estimate of 2 per commit).
          //
          // The x axis is the log written, not `recordsSinceMaterialization`: Borealis has no
          // checkpoint, and its storage nodes materialize continuously in the background, so the
          // records above their materialized point stay at a few hundred whatever the log's length (a
          // log "since the last materialization" of 100 000 records cannot be built). That backlog at
          // the crash is reported beside the figure (recordsSource).
          const conn = new LibsqlConnection(createClient({ url }));
          try {
            await recreate(conn, "restart_log", KV_DDL.replace("TABLE kv", "TABLE restart_log"));
            const base = await metrics();
            const delta = (m: BorealisMetrics | null, key: "redoRecords" | "redoBytes"): number | null =>
              num(m?.[key]) !== null && num(base?.[key]) !== null && num(m![key])! >= num(base![key])! ? num(m![key])! - num(base![key])! : null;
            const since = (m: BorealisMetrics | null): number | null => delta(m, "redoRecords");
            let rows = 0;
            let counted = 0;
            const clients = Array.from({ length: 16 }, () => new LibsqlConnection(createClient({ url })));
            try {
              // Bounded: each pass writes ≥ 1 row; the pass count is capped.
              for (let pass = 0; pass < 1000 && counted < records && performance.now() < deadline; pass++) {
                const chunk = Math.max(16, Math.min(10_000, Math.ceil((records - counted) / 2)));
                let next = rows + 1;
                const end = rows + 1 + chunk;
                await Promise.all(clients.map(async (c) => {
                  while (next < end && performance.now() < deadline) {
                    const id = next++;
                    await c.execute("INSERT INTO restart_log (id, k, v) VALUES (?, ?, ?)", [id, id % 1000, String(id).padEnd(100, "x")]);
                  }
                }));
                rows = next - 1;
                counted = since(await metrics()) ?? 2 * rows;
                progress(counted);
              }
            } finally {
              await Promise.all(clients.map((c) => c.close()));
            }
            lastRestartId = rows;
            const m = await metrics();
            const exact = since(m);
            const backlog = num(m?.recordsSinceMaterialization);
            return {
              records: exact ?? 2 * rows,
              recordsSource: exact === null
                ? "estimate (2 redo records per single-row commit; no /metrics)"
                : `GET /metrics: redo records written${backlog === null ? "" : `; ${backlog} above the storage nodes' materialized point at the crash`}`,
              bytes: delta(m, "redoBytes"),
              rows,
            };
          } finally {
            await conn.close();
          }
        },
        async crashAndRestart(): Promise<RestartMeasurement> {
          assert(lastRestartId > 0, "borealis: prepareLog before crashAndRestart");
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
                const rs = await client.execute({ sql: "SELECT v FROM restart_log WHERE id = ?", args: [lastRestartId] });
                if (rs.rows.length !== 1) throw new Error(`row ${lastRestartId} lost after the crash`);
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
          return { restartMs: performance.now() - t0, method };
        },
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await stopGroup(cluster.pid);
        cluster.unregister();
      },
    };
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
