/**
 * Shared by the end-to-end tests: a seeded random source (the seed is printed so any run can be
 * replayed), clients with a bounded request time, the classification of a failed commit (failed vs
 * unknown), a recorded concurrent write load, and the after-every-fault checks (`PRAGMA
 * integrity_check`, the writer's `GET /health`).
 */
import assert from "node:assert/strict";
import { createClient, LibsqlError, type Client } from "@libsql/client";
import type { ProcessCluster } from "../../src/testing/process-cluster.js";

// ------------------------------------------------------------------------------------- randomness

/** mulberry32: small, fast, good enough to pick accounts and amounts reproducibly. */
export class Rng {
  private s: number;
  constructor(readonly seed: number) {
    this.s = seed >>> 0;
  }

  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** The seed from BOREALIS_SEED (to replay a run) or a fresh one; the caller prints it. */
export function seedFromEnv(): number {
  const fromEnv = process.env["BOREALIS_SEED"];
  if (fromEnv !== undefined && /^\d+$/.test(fromEnv)) return Number(fromEnv) >>> 0;
  return (Date.now() ^ (process.pid << 16)) >>> 0;
}

// ---------------------------------------------------------------------------------------- clients

/** Every HTTP request of this client gives up after `timeoutMs` (so no loop can hang on a dead peer). */
export function boundedClient(url: string, timeoutMs = 60_000): Client {
  const timedFetch = (request: Request) => fetch(request, { signal: AbortSignal.timeout(timeoutMs) });
  return createClient({ url, fetch: timedFetch });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await cond()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) assert.fail(`${what}: not reached within ${timeoutMs} ms`);
    await sleep(100);
  }
}

// ------------------------------------------------------------------------------------ outcomes

/**
 * What a client may conclude from a commit's answer. "failed" only when the server said the
 * transaction did not commit — an SQLite error (the transaction was rolled back) or a refusal before
 * commit (LAL back-pressure, a writer that stopped committing) — or when the request could not even
 * connect (so it was never sent, and an open transaction died with the old writer). Anything else — COMMIT_OUTCOME_UNKNOWN,
 * a timeout, a dropped connection, a writer that died mid-request — is "unknown": the row may or may
 * not be there, but if it is, all of its transaction must be.
 */
export type Outcome = "acked" | "failed" | "unknown";

const REFUSED_BEFORE_COMMIT = new Set(["BACKPRESSURE", "WRITER_FENCED"]);

export function outcomeOf(e: unknown): Exclude<Outcome, "acked"> {
  if (e instanceof LibsqlError && (e.code.startsWith("SQLITE_") || REFUSED_BEFORE_COMMIT.has(e.code))) return "failed";
  // No connection (the writer is restarting): the request was never sent. A reused connection that
  // breaks mid-request reports a reset or a closed socket instead, which stays "unknown".
  if (connectionRefused(e)) return "failed";
  return "unknown";
}

function connectionRefused(e: unknown): boolean {
  for (let x: unknown = e, depth = 0; x instanceof Error && depth < 5; x = x.cause, depth++) {
    if ((x as { code?: unknown }).code === "ECONNREFUSED") return true;
  }
  return false;
}

export function errorCode(e: unknown): string {
  if (e instanceof LibsqlError) return e.code;
  if (connectionRefused(e)) return "ECONNREFUSED";
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

// ------------------------------------------------------------------------------------ write load

/**
 * A concurrent write load: `workers` clients, each committing transactions that insert one row into
 * `ledger` and one into `ledger_mirror` (same id) and bump the worker's row in `ledger_count`. Every
 * transaction's outcome is recorded, so afterwards:
 *   - every acknowledged id is present in both tables (no acknowledged commit lost, invariant 12);
 *   - every failed id is absent from both (a failure is not a hidden success);
 *   - an unknown id is in both tables or in neither (a transaction is atomic across any fault);
 *   - each worker's counter equals the number of its ids present.
 */
export class WriteLoad {
  readonly outcomes = new Map<number, Outcome>();
  readonly errors = new Map<string, number>();
  private running: Promise<void>[] = [];
  private stopping = false;
  private startedAt = 0;
  private busyMs = 0;
  private nextSeq: number[] = [];

  constructor(private readonly url: string, readonly workers: number, private readonly payloadBytes = 200) {
    this.nextSeq = Array.from({ length: workers }, () => 0);
  }

  static async createSchema(db: Client, workers: number): Promise<void> {
    await db.batch([
      "CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY, worker INTEGER NOT NULL, payload BLOB NOT NULL)",
      "CREATE TABLE IF NOT EXISTS ledger_mirror (id INTEGER PRIMARY KEY, check_sum INTEGER NOT NULL)",
      "CREATE TABLE IF NOT EXISTS ledger_count (worker INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
      ...Array.from({ length: workers }, (_, w) => ({ sql: "INSERT OR IGNORE INTO ledger_count VALUES (?, 0)", args: [w] })),
    ], "write");
  }

  /** Starts (or restarts, after stop()) the workers. Each stops by itself after `maxTxPerWorker`. */
  start(maxTxPerWorker = 100_000): void {
    this.stopping = false;
    this.startedAt = performance.now();
    this.running = Array.from({ length: this.workers }, (_, w) => this.worker(w, maxTxPerWorker));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.running);
    if (this.running.length > 0) this.busyMs += performance.now() - this.startedAt;
    this.running = [];
  }

  count(o: Outcome): number {
    let n = 0;
    for (const v of this.outcomes.values()) if (v === o) n++;
    return n;
  }

  /** Waits until at least `n` more transactions are acknowledged than now (progress under a fault). */
  async progress(n: number, timeoutMs: number): Promise<void> {
    const target = this.count("acked") + n;
    await waitFor(`${n} more acknowledged commits`, () => this.count("acked") >= target, timeoutMs);
  }

  summary(): string {
    const errs = [...this.errors].map(([k, v]) => `${k}×${v}`).join(", ");
    const rate = this.busyMs > 0 ? `, ${(this.count("acked") / (this.busyMs / 1000)).toFixed(0)} acked/s while running` : "";
    return `${this.count("acked")} acked, ${this.count("failed")} failed, ${this.count("unknown")} unknown${errs ? ` (${errs})` : ""}${rate}`;
  }

  /** Checks every recorded outcome against the database (see the class comment). */
  async verify(db: Client): Promise<{ present: number }> {
    const ledger = await db.execute("SELECT id, worker, length(payload) AS len FROM ledger");
    const mirror = await db.execute("SELECT id, check_sum FROM ledger_mirror");
    const counts = await db.execute("SELECT worker, n FROM ledger_count ORDER BY worker");
    const inLedger = new Map(ledger.rows.map((r) => [Number(r["id"]), { worker: Number(r["worker"]), len: Number(r["len"]) }]));
    const inMirror = new Map(mirror.rows.map((r) => [Number(r["id"]), Number(r["check_sum"])]));
    const problems: string[] = [];
    for (const [id, outcome] of this.outcomes) {
      const a = inLedger.has(id);
      const b = inMirror.has(id);
      if (outcome === "acked" && !(a && b)) problems.push(`acknowledged ${id} lost (ledger ${a}, mirror ${b})`);
      if (outcome === "failed" && (a || b)) problems.push(`failed ${id} is there (ledger ${a}, mirror ${b})`);
      if (outcome === "unknown" && a !== b) problems.push(`unknown ${id} half there (ledger ${a}, mirror ${b})`);
    }
    for (const [id, row] of inLedger) {
      if (!this.outcomes.has(id)) problems.push(`row ${id} was never written`);
      if (row.len !== this.payloadBytes) problems.push(`row ${id} has ${row.len} payload bytes`);
      if (inMirror.get(id) !== checkSum(id)) problems.push(`row ${id}: mirror check ${inMirror.get(id)}`);
    }
    const perWorker = Array.from({ length: this.workers }, () => 0);
    for (const row of inLedger.values()) perWorker[row.worker] = (perWorker[row.worker] ?? 0) + 1;
    for (const r of counts.rows) {
      const w = Number(r["worker"]);
      if (w < this.workers && Number(r["n"]) !== perWorker[w]) problems.push(`worker ${w}: counter ${Number(r["n"])}, rows ${perWorker[w]}`);
    }
    assert.deepEqual(problems.slice(0, 20), [], `${problems.length} problems; load: ${this.summary()}`);
    return { present: inLedger.size };
  }

  private async worker(w: number, maxTx: number): Promise<void> {
    const db = boundedClient(this.url);
    const payload = new Uint8Array(this.payloadBytes).fill(w + 1);
    try {
      for (let i = 0; i < maxTx && !this.stopping; i++) {
        const seq = this.nextSeq[w]!++;
        const id = w * 1_000_000 + seq + 1;
        this.outcomes.set(id, "unknown"); // until the server answers
        try {
          await db.batch([
            { sql: "INSERT INTO ledger (id, worker, payload) VALUES (?, ?, ?)", args: [id, w, payload] },
            { sql: "INSERT INTO ledger_mirror (id, check_sum) VALUES (?, ?)", args: [id, checkSum(id)] },
            { sql: "UPDATE ledger_count SET n = n + 1 WHERE worker = ?", args: [w] },
          ], "write");
          this.outcomes.set(id, "acked");
        } catch (e) {
          this.outcomes.set(id, outcomeOf(e));
          const code = errorCode(e).slice(0, 60);
          this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
          await sleep(50); // a writer being restarted refuses connections: do not spin
        }
      }
    } finally {
      db.close();
    }
  }
}

function checkSum(id: number): number {
  return (id * 7919) % 1_000_003;
}

// ---------------------------------------------------------------------------------- fault checks

export interface WriterHealth {
  readonly status: string;
  readonly vdl: number;
  readonly vcl: number;
  readonly epoch: number;
  readonly waitingCommits: number;
  readonly fenced: string | null;
}

export async function writerHealth(cluster: ProcessCluster): Promise<{ httpStatus: number; body: WriterHealth }> {
  const res = await fetch(cluster.writerUrl + "/health", { signal: AbortSignal.timeout(10_000) });
  return { httpStatus: res.status, body: (await res.json()) as WriterHealth };
}

/** After every fault test: SQLite's integrity check is "ok" and the writer's /health is ok. */
export async function assertHealthy(cluster: ProcessCluster, db: Client): Promise<WriterHealth> {
  const ic = await db.execute("PRAGMA integrity_check");
  assert.deepEqual(ic.rows.map((r) => r[0]), ["ok"], "PRAGMA integrity_check");
  const h = await writerHealth(cluster);
  assert.equal(h.httpStatus, 200, `writer /health: ${JSON.stringify(h.body)}`);
  assert.equal(h.body.status, "ok");
  assert.equal(h.body.fenced, null);
  assert.ok(h.body.vdl <= h.body.vcl, `VDL ${h.body.vdl} ≤ VCL ${h.body.vcl}`);
  return h.body;
}
