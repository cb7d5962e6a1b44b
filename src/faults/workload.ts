/**
 * What the workloads share: the `Workload` interface the runner drives, the rule that decides whether
 * an error means `fail` or `info`, a seeded PRNG, and the bounded client loop.
 *
 * fail vs info (Jepsen's rule, the one that matters most here): an operation is `fail` only when it
 * certainly did not take effect. A write transaction whose BEGIN or statements failed never sent its
 * COMMIT, so it is `fail` (`DefiniteFailure`); an error or a timeout while committing, or on an
 * autocommit write, is `info` — the commit may be durable and acknowledged by nobody
 * (COMMIT_OUTCOME_UNKNOWN, a killed writer, a lost connection). Reads are `fail` on any error (they
 * change nothing). A timeout is always `info`, and the process that got it is retired.
 */
import { createClient, type Client } from "@libsql/client";
import type { History, Op } from "./history.js";

export interface Rng {
  next(): number;
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
  /** `k` distinct items, in random order. */
  sample<T>(items: readonly T[], k: number): T[];
}

/** mulberry32: small, fast, seeded; a run's choices replay from its seed. */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return {
    next, int,
    pick: (items) => items[int(items.length)]!,
    sample: (items, k) => {
      const copy = [...items];
      for (let i = copy.length - 1; i > 0; i--) {
        const j = int(i + 1);
        [copy[i], copy[j]] = [copy[j]!, copy[i]!];
      }
      return copy.slice(0, k);
    },
  };
}

/** The operation certainly did not take effect: recorded as `fail`. */
export class DefiniteFailure extends Error {
  override name = "DefiniteFailure";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export class OpTimeout extends Error {
  override name = "OpTimeout";
}

export interface Outcome {
  readonly type: "ok" | "fail";
  readonly value: unknown;
  readonly error?: string;
}

export interface CheckSummary {
  readonly valid: boolean | "unknown";
  readonly anomalyTypes: readonly string[];
  /** The checker's full result, written to the run's directory. */
  readonly detail: unknown;
}

export interface Workload {
  readonly name: string;
  /** Creates tables and initial data; runs before any fault and may retry. */
  setup(db: Client): Promise<void>;
  /** The next operation for a client (f and invocation value). */
  generate(rand: Rng): { f: string; value: unknown };
  /** Runs it: resolves ok/fail, throws `DefiniteFailure` (fail) or anything else (info). */
  invoke(db: Client, f: string, value: unknown): Promise<Outcome>;
  /** Operations to run once the faults are healed (each retried until it completes ok, within bounds). */
  finalOps(): { f: string; value: unknown }[];
  check(ops: readonly Op[]): CheckSummary;
  /** elle-cli histories to write: file name → the ops and how to map values. */
  elleFiles(ops: readonly Op[]): { name: string; ops: readonly Op[]; mapValue?: (op: Op) => unknown }[];
}

export function errorText(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    const cause = e.cause instanceof Error ? ` (${e.cause.message})` : "";
    return `${typeof code === "string" ? `${code}: ` : ""}${e.message}${cause}`.slice(0, 300);
  }
  return String(e).slice(0, 300);
}

export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new OpTimeout(`no answer within ${ms} ms`)), ms);
  });
  p.catch(() => {}); // an abandoned operation must not become an unhandled rejection
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export interface ClientLoopOptions {
  readonly url: string;
  readonly workload: Workload;
  readonly history: History;
  readonly rand: Rng;
  /** The first process id of this worker; retired processes take ids from `nextProcess`. */
  readonly process: number;
  readonly nextProcess: () => number;
  readonly opTimeoutMs: number;
  /** The loop stops starting operations at this time (performance.now()). */
  readonly deadline: number;
  readonly stopped: () => boolean;
}

export interface ClientLoopStats {
  ok: number;
  fail: number;
  info: number;
}

/**
 * One client: operations one after another until the deadline. After `info` the process retires (its
 * operation may still be running) and the client continues as a new process on a new connection.
 */
export async function clientLoop(o: ClientLoopOptions, stats: ClientLoopStats): Promise<void> {
  let process = o.process;
  let db = createClient({ url: o.url });
  try {
    while (performance.now() < o.deadline && !o.stopped()) {
      const { f, value } = o.workload.generate(o.rand);
      const outcome = await runOp(o.history, db, o.workload, process, f, value, o.opTimeoutMs);
      stats[outcome.type as keyof ClientLoopStats]++;
      if (outcome.type === "info") {
        process = o.nextProcess();
        db.close();
        db = createClient({ url: o.url });
      }
      // A refused connection fails at once: do not spin on a writer that is restarting.
      if (outcome.type !== "ok") await sleep(50 + o.rand.int(150));
    }
  } finally {
    db.close();
  }
}

/** Invokes one operation, records invoke and completion, and returns the completion. */
export async function runOp(history: History, db: Client, workload: Workload, process: number, f: string, value: unknown, timeoutMs: number): Promise<Op> {
  const inv = history.invoke(process, f, value);
  try {
    const out = await withTimeout(workload.invoke(db, f, value), timeoutMs);
    return history.complete(inv, out.type, out.value, out.error);
  } catch (e) {
    if (e instanceof DefiniteFailure) return history.complete(inv, "fail", value, errorText(e.cause ?? e));
    return history.complete(inv, "info", value, errorText(e));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

type Tx = Awaited<ReturnType<Client["transaction"]>>;
export type TxnBody<T> = (tx: Tx) => Promise<{ commit: true; value: T } | { commit: false; reason: string }>;

/**
 * Runs `body` in a write transaction (BEGIN IMMEDIATE). Anything that goes wrong before COMMIT is sent
 * is a `DefiniteFailure`; a body that declines to commit rolls back and is `fail`; an error from COMMIT
 * itself propagates (the caller records `info`).
 */
export async function inWriteTxn<T>(db: Client, invoked: unknown, body: TxnBody<T>): Promise<Outcome> {
  let tx: Tx | undefined;
  let decision: Awaited<ReturnType<TxnBody<T>>>;
  try {
    tx = await db.transaction("write");
    decision = await body(tx);
  } catch (e) {
    tx?.close();
    throw new DefiniteFailure("failed before commit", { cause: e });
  }
  if (!decision.commit) {
    await tx.rollback().catch(() => {});
    tx.close();
    return { type: "fail", value: invoked, error: decision.reason };
  }
  await tx.commit();
  return { type: "ok", value: decision.value };
}

/** Runs `body` in a read-only transaction; any error is a `DefiniteFailure` (a read changes nothing). */
export async function inReadTxn<T>(db: Client, body: (tx: Tx) => Promise<T>): Promise<T> {
  let tx: Tx | undefined;
  try {
    tx = await db.transaction("read");
    const value = await body(tx);
    await tx.commit();
    return value;
  } catch (e) {
    tx?.close();
    throw new DefiniteFailure("read failed", { cause: e });
  }
}
