/**
 * PostgreSQL from Debian's packages, as the durable single-node anchor.
 *
 * Lifecycle: find the binaries under /usr/lib/postgresql/<version>/bin (installing the `postgresql`
 * package with apt-get when they are missing and we are root); `initdb` a fresh cluster in the bench's
 * temporary directory; start `postgres` on 127.0.0.1 and a free port, its unix socket in the same
 * directory; stop it and let the harness delete the directory afterwards. PostgreSQL refuses to run as
 * root, so as root every server command runs as the `postgres` system user (created by the package;
 * created here if missing) through `setpriv`, which execs in place — the PID we spawn is the
 * postmaster's, which is what we stop and what the CPU/memory sampler roots its tree at.
 *
 * Settings: fsync=on, synchronous_commit=on (stated explicitly, they are also the defaults),
 * max_connections=200 (64 clients + the harness, with room), trust authentication on loopback only;
 * everything else initdb's defaults (shared_buffers 128 MB, full_page_writes on, …).
 *
 * Client: node-postgres (`pg`), one `pg.Client` per simulated client, unnamed statements (what
 * `client.query(text, values)` does). WAL bytes come from `pg_current_wal_insert_lsn()` read by the
 * harness at the edges of each window.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { assert } from "../../src/core/assert.js";
import { packageVersion } from "./package-version.js";
import { sleep } from "../cleanup.js";
import { freePort } from "../net.js";
import { processExists, waitGone } from "../proc.js";
import { KV_DDL, loadKvRows, recreate } from "../workloads/workload.js";
import {
  numberedPlaceholders, SystemUnavailable, type BenchConnection, type BenchSystem, type ClientSpec, type PreparedLog,
  type RestartMeasurement, type Rows, type RunningSystem, type SqlArg, type SqlExecutor, type StartContext,
} from "./system.js";

const PG_CLIENT_VERSION = packageVersion("pg");

const PG_ROOT = "/usr/lib/postgresql";
const MAX_CONNECTIONS = 200;
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
/** Retryable SQLSTATEs: serialization_failure, deadlock_detected, lock_not_available. */
const RETRYABLE = new Set(["40001", "40P01", "55P03"]);

// --------------------------------------------------------------------------------------- installation

function findBinDir(): string | null {
  if (!existsSync(PG_ROOT)) return null;
  const versions = readdirSync(PG_ROOT)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(PG_ROOT, v, "bin", "postgres")) && existsSync(join(PG_ROOT, v, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length === 0 ? null : join(PG_ROOT, versions[0]!, "bin");
}

function run(cmd: string, args: readonly string[], log: (line: string) => void, env: NodeJS.ProcessEnv = process.env): void {
  log(`  $ ${cmd} ${args.join(" ")}`);
  const r = spawnSync(cmd, args, { encoding: "utf8", env, maxBuffer: 64 * 1024 * 1024 });
  if (r.error !== undefined || r.status !== 0) {
    const tail = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-5).join(" | ");
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.error?.message ?? `exit ${r.status}`}): ${tail}`);
  }
}

/**
 * apt-get install postgresql. Before it, when postgresql-common has never been configured, tell it
 * not to create and start the packaged "main" cluster: the bench runs its own and starts nothing else.
 */
function installPostgres(log: (line: string) => void): string {
  if (process.getuid?.() !== 0) {
    throw new SystemUnavailable(
      "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres) and the bench is not root; install it with `sudo apt-get install -y postgresql`",
      "not-installable",
    );
  }
  if (spawnSync("apt-get", ["--version"]).status !== 0) {
    throw new SystemUnavailable("PostgreSQL is not installed and apt-get is not available", "not-installable");
  }
  log("PostgreSQL is not installed: installing Debian's package");
  const conf = "/etc/postgresql-common/createcluster.conf";
  if (!existsSync(conf)) {
    mkdirSync("/etc/postgresql-common", { recursive: true });
    writeFileSync(conf, "# Written by Borealis's bench before installing PostgreSQL: no packaged cluster.\ncreate_main_cluster = false\n");
    log(`  wrote ${conf}: create_main_cluster = false`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  try {
    run("apt-get", ["update"], log, env);
    run("apt-get", ["install", "-y", "-o", "Dpkg::Options::=--force-confold", "postgresql"], log, env);
  } catch (e) {
    throw new SystemUnavailable(`PostgreSQL could not be installed: ${(e as Error).message}`, "not-installable");
  }
  const bin = findBinDir();
  if (bin === null) throw new SystemUnavailable("apt-get installed postgresql but no server binaries were found", "not-installable");
  log(`  installed: ${bin}`);
  return bin;
}

/** uid/gid to run the server as: ourselves unless root, else the `postgres` system user. */
function serverUser(log: (line: string) => void): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const id = (flag: string): number | null => {
    const r = spawnSync("id", [flag, "postgres"], { encoding: "utf8" });
    return r.status === 0 ? Number(r.stdout.trim()) : null;
  };
  if (id("-u") === null) {
    run("useradd", ["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "postgres"], log);
  }
  const uid = id("-u");
  const gid = id("-g");
  if (uid === null || gid === null) throw new SystemUnavailable("no `postgres` user to run the server as");
  return { uid, gid };
}

/** The command line that runs `bin` as the server user (in place, same PID). */
function asServerUser(user: { uid: number; gid: number } | null, bin: string, args: readonly string[]): [string, string[]] {
  if (user === null) return [bin, [...args]];
  return ["setpriv", [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", "--", bin, ...args]];
}

/** Environment without PG* variables (PGDATA, PGPORT … would change what initdb and clients do). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("PG")) env[k] = v;
  env.LC_ALL = "C";
  return env;
}

/** "16/B374D848" → bytes. */
export function lsnToBytes(lsn: string): number {
  const m = /^([0-9A-F]+)\/([0-9A-F]+)$/i.exec(lsn);
  assert(m !== null, `not an LSN: ${lsn}`);
  return parseInt(m[1]!, 16) * 2 ** 32 + parseInt(m[2]!, 16);
}

// ---------------------------------------------------------------------------------------- connection

class PgConnection implements BenchConnection {
  private readonly texts = new Map<string, string>();

  constructor(private readonly client: pg.Client) {}

  private text(sql: string): string {
    let t = this.texts.get(sql);
    if (t === undefined) {
      if (this.texts.size >= 256) this.texts.clear();
      t = numberedPlaceholders(sql);
      this.texts.set(sql, t);
    }
    return t;
  }

  async execute(sql: string, args: readonly SqlArg[] = []): Promise<Rows> {
    const res = await this.client.query({ text: this.text(sql), values: args as SqlArg[], rowMode: "array" });
    return res.rows as Rows;
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    await this.client.query("BEGIN");
    try {
      const value = await fn(this);
      await this.client.query("COMMIT");
      return value;
    } catch (e) {
      await this.client.query("ROLLBACK").catch(() => {});
      throw e;
    }
  }

  isRetryable(error: unknown): boolean {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" && RETRYABLE.has(code);
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => {});
  }
}

async function connectPg(spec: { host: string; port: number; user: string; database: string }): Promise<pg.Client> {
  const client = new pg.Client({ host: spec.host, port: spec.port, user: spec.user, database: spec.database });
  // An error on an idle client (server gone) must not crash the process; the next query fails instead.
  client.on("error", () => {});
  await client.connect();
  return client;
}

// --------------------------------------------------------------------------------------------- server

interface ServerState {
  child: ChildProcess;
  pid: number;
  unregister: () => void;
}

export const postgresSystem: BenchSystem = {
  name: "postgres",
  title: "PostgreSQL",
  clientModel: "network",
  clientLibrary: `node-postgres ${PG_CLIENT_VERSION}`,

  async start(ctx: StartContext): Promise<RunningSystem> {
    const bin = findBinDir() ?? installPostgres(ctx.log);
    const user = serverUser(ctx.log);
    const dir = join(ctx.workDir, "postgres");
    const dataDir = join(dir, "data");
    mkdirSync(dir, { recursive: true });
    if (user !== null) {
      // The server user must reach its directory: traverse the work dir, own its own.
      chmodSync(ctx.workDir, 0o711);
      chownSync(dir, user.uid, user.gid);
    }
    const env = cleanEnv();
    const [initCmd, initArgs] = asServerUser(user, join(bin, "initdb"), [
      "-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync",
    ]);
    ctx.log(`initdb ${dataDir}`);
    const init = spawnSync(initCmd, initArgs, { encoding: "utf8", env, cwd: dir });
    if (init.status !== 0) {
      throw new SystemUnavailable(`initdb failed: ${(init.error?.message ?? init.stderr ?? "").trim().split("\n").slice(-3).join(" | ")}`);
    }

    const port = await freePort();
    const serverArgs = [
      "-D", dataDir, "-p", String(port),
      "-c", "listen_addresses=127.0.0.1",
      "-c", `unix_socket_directories=${dir}`,
      "-c", `max_connections=${MAX_CONNECTIONS}`,
      "-c", "fsync=on",
      "-c", "synchronous_commit=on",
    ];
    const logFile = join(dir, "postgres.log");
    const spec = { host: "127.0.0.1", port, user: "postgres", database: "bench" };

    const launch = (): ServerState => {
      const fd = openSync(logFile, "a");
      const [cmd, args] = asServerUser(user, join(bin, "postgres"), serverArgs);
      // Its own session: Ctrl-C in the terminal reaches the bench, which then stops the server cleanly.
      const child = spawn(cmd, args, { env, cwd: dir, stdio: ["ignore", fd, fd], detached: true });
      closeSync(fd);
      child.on("error", () => {});
      assert(child.pid !== undefined, "postgres: spawn returned no pid");
      // SIGINT = fast shutdown (disconnect clients, checkpoint, exit).
      const unregister = ctx.cleanup.addProcess("postgres", child.pid, { signal: "SIGINT", graceMs: STOP_TIMEOUT_MS });
      return { child, pid: child.pid, unregister };
    };
    const logTail = (): string => {
      try {
        return readFileSync(logFile, "utf8").trim().split("\n").slice(-3).join(" | ");
      } catch {
        return "(no log)";
      }
    };
    /** Polls until `probe` succeeds; fails early if the postmaster exits. */
    const waitServing = async <T>(state: ServerState, database: string, probe: (c: pg.Client) => Promise<T>, pollMs: number): Promise<T> => {
      const deadline = performance.now() + START_TIMEOUT_MS;
      // Bounded by the deadline.
      for (;;) {
        if (state.child.exitCode !== null || state.child.signalCode !== null) {
          throw new SystemUnavailable(`postgres exited during start-up: ${logTail()}`);
        }
        try {
          const c = await connectPg({ ...spec, database });
          try {
            return await probe(c);
          } finally {
            await c.end().catch(() => {});
          }
        } catch (e) {
          if (performance.now() > deadline) throw new SystemUnavailable(`postgres did not accept connections within ${START_TIMEOUT_MS} ms: ${(e as Error).message}; ${logTail()}`);
        }
        await sleep(pollMs);
      }
    };

    let server = launch();
    ctx.log(`postgres starting on 127.0.0.1:${port} (pid ${server.pid})`);
    await waitServing(server, "postgres", async (c) => {
      await c.query("CREATE DATABASE bench");
    }, 50);
    const admin = await connectPg(spec);
    const show = async (name: string): Promise<string> => String((await admin.query(`SHOW ${name}`)).rows[0]?.[name]);
    const version = await show("server_version");
    const settings: Record<string, string> = { address: `127.0.0.1:${port}` };
    for (const name of ["fsync", "synchronous_commit", "full_page_writes", "wal_level", "shared_buffers", "max_connections", "checkpoint_timeout", "max_wal_size"]) {
      settings[name] = await show(name);
    }
    assert(settings.fsync === "on" && settings.synchronous_commit === "on", "postgres: durability settings not in effect");
    let adminClient: pg.Client | null = admin;
    const adminQuery = async (sql: string): Promise<pg.QueryResult> => {
      if (adminClient === null) adminClient = await connectPg(spec);
      return adminClient.query(sql);
    };

    let lastRestartId = 0;
    let stopped = false;
    const stopServer = async (state: ServerState, signal: NodeJS.Signals): Promise<void> => {
      if (processExists(state.pid)) {
        process.kill(state.pid, signal);
        if (!(await waitGone(state.pid, STOP_TIMEOUT_MS))) {
          process.kill(state.pid, "SIGKILL");
          await waitGone(state.pid, 5_000);
        }
      }
      state.unregister();
    };

    return {
      version: `PostgreSQL ${version}`,
      settings,
      clientSpec: { system: "postgres", ...spec } satisfies ClientSpec,
      serverPids: async () => [server.pid],
      async counters() {
        const r = await adminQuery("SELECT pg_current_wal_insert_lsn()::text AS lsn");
        return { logBytes: lsnToBytes(String(r.rows[0]?.lsn)), logRecords: null, internalNetBytes: null };
      },
      restart: {
        async prepareLog(records: number, budgetMs: number, progress: (done: number) => void): Promise<PreparedLog> {
          const deadline = performance.now() + budgetMs;
          const conn = new PgConnection(await connectPg(spec));
          try {
            await recreate(conn, "restart_log", KV_DDL.replace("TABLE kv", "TABLE restart_log"));
            await adminQuery("CHECKPOINT");
            const start = String((await adminQuery("SELECT pg_current_wal_insert_lsn()::text AS lsn")).rows[0]?.lsn);
            // A row inserted by a multi-row INSERT is two WAL records (heap, primary-key index); the
            // transaction adds a commit record. Write by that estimate in slices of 10k rows (the
            // budget is checked between them); once it says "enough", count exactly with pg_waldump
            // (one scan of the range, not one per slice) and top up if short.
            const currentLsn = async (): Promise<string> => String((await adminQuery("SELECT pg_current_wal_insert_lsn()::text AS lsn")).rows[0]?.lsn);
            let rows = 0;
            let counted = 0;
            for (let pass = 0; pass < 1000 && counted < records && performance.now() < deadline; pass++) {
              const more = Math.min(10_000, Math.max(1, Math.ceil((records - counted) / 2)));
              const before = counted;
              await loadKvRows(conn, "restart_log", rows + 1, more, { batchRows: 500, batchesPerTxn: 2 }, (n) => progress(before + 2 * n));
              rows += more;
              counted += 2 * more;
              if (counted >= records) counted = walRecords(bin, join(dataDir, "pg_wal"), start, await currentLsn()) ?? counted;
            }
            lastRestartId = rows;
            const end = await currentLsn();
            const exact = walRecords(bin, join(dataDir, "pg_wal"), start, end);
            return {
              records: exact ?? 2 * rows,
              recordsSource: exact === null ? "estimate (2 WAL records per row)" : "pg_waldump",
              bytes: lsnToBytes(end) - lsnToBytes(start),
              rows,
            };
          } finally {
            await conn.close();
          }
        },
        async crashAndRestart(): Promise<RestartMeasurement> {
          assert(lastRestartId > 0, "postgres: prepareLog before crashAndRestart");
          await adminClient?.end().catch(() => {});
          adminClient = null;
          // SIGQUIT = immediate shutdown (what `pg_ctl stop -m immediate` sends): no checkpoint, crash
          // recovery from the last checkpoint on the next start.
          process.kill(server.pid, "SIGQUIT");
          if (!(await waitGone(server.pid, STOP_TIMEOUT_MS))) throw new Error("postgres: postmaster ignored SIGQUIT");
          server.unregister();
          const t0 = performance.now();
          server = launch();
          await waitServing(server, "bench", async (c) => {
            const r = await c.query({ text: "SELECT v FROM restart_log WHERE id = $1", values: [lastRestartId], rowMode: "array" });
            if (r.rows.length !== 1) throw new Error(`row ${lastRestartId} lost after the crash`);
          }, 5);
          return {
            restartMs: performance.now() - t0,
            method: "postmaster sent SIGQUIT (immediate shutdown, as `pg_ctl stop -m immediate`); time = start + crash recovery + first read, polled every 5 ms",
          };
        },
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await adminClient?.end().catch(() => {});
        adminClient = null;
        await stopServer(server, "SIGINT");
      },
    };
  },

  async connect(spec: ClientSpec): Promise<BenchConnection> {
    assert(spec.system === "postgres" && typeof spec.host === "string" && typeof spec.port === "number", "postgres: bad client spec");
    return new PgConnection(await connectPg({
      host: spec.host, port: spec.port, user: String(spec.user), database: String(spec.database),
    }));
  },
};

/** Exact WAL record count between two LSNs with pg_waldump --stats; null if it cannot tell. */
function walRecords(bin: string, walDir: string, start: string, end: string): number | null {
  const r = spawnSync(join(bin, "pg_waldump"), ["--stats", "-p", walDir, "-s", start, "-e", end], {
    encoding: "utf8", maxBuffer: 16 * 1024 * 1024, env: cleanEnv(),
  });
  const m = /^Total\s+(\d+)/m.exec(r.stdout ?? "");
  return m === null ? null : Number(m[1]);
}
