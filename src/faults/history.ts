/**
 * Operation histories, Jepsen-style: every client operation is recorded twice, when it is invoked and
 * when it completes, as `ok` (it happened), `fail` (it certainly did not happen) or `info` (unknown:
 * a timeout, a lost connection, an error while committing). A process that got `info` is retired and
 * its client continues under a new process id, because its previous operation may still be in flight
 * (github.com/jepsen-io/knossos: counting timeouts as failures hides lost or duplicated writes).
 *
 * What this module owns:
 * - the `Op` shape and the recorder (`History`), which gives every event a global index in real-time
 *   order and a monotonic timestamp (ns since the run started);
 * - pairing invocations with completions (`pairOps`), which the checkers build on;
 * - the JSON writer in elle-cli's format (github.com/ligurio/elle-cli: a JSON array of
 *   `{"index","process","type","f","value"}`), so a history can be checked independently of our
 *   checkers, e.g. `java -jar elle-cli.jar --model list-append history.json`.
 *
 * Values are whatever the workload puts there, in elle-cli's shapes: list-append transactions are
 * `[["append",k,v],["r",k,[...]]]` (reads `null` in the invocation), bank reads `{"0":10,…}` and
 * transfers `{"from","to","amount"}`, register operations `[key, value]` (jepsen.independent tuples;
 * the writer splits them into one cas-register file per key).
 */
import { writeFile } from "node:fs/promises";

export type OpType = "invoke" | "ok" | "fail" | "info";
export type Process = number | "nemesis";

export interface Op<V = unknown> {
  /** Position of this event in the whole history: real-time order. */
  readonly index: number;
  /** Nanoseconds since the history started (monotonic clock). */
  readonly time: number;
  readonly process: Process;
  readonly type: OpType;
  readonly f: string;
  readonly value: V;
  /** Why an operation failed or is indeterminate (not part of elle-cli's format; ignored by it). */
  readonly error?: string;
}

/** One client operation: its invocation and its completion (always present once a run has finished). */
export interface OpPair<V = unknown> {
  readonly invoke: Op<V>;
  readonly complete: Op<V>;
}

export class History {
  private readonly events: Op[] = [];
  private readonly started = performance.now();
  private readonly pending = new Map<Process, Op>();

  /** Records an invocation. A process has at most one operation in flight (Jepsen's rule). */
  invoke<V>(process: number, f: string, value: V): Op<V> {
    if (this.pending.has(process)) throw new Error(`process ${process} already has an operation in flight`);
    const op = this.push({ process, type: "invoke", f, value });
    this.pending.set(process, op);
    return op as Op<V>;
  }

  /** Records the completion of `invoked`: ok, fail or info, with the completion's value. */
  complete<V>(invoked: Op<V>, type: Exclude<OpType, "invoke">, value: V, error?: string): Op<V> {
    if (this.pending.get(invoked.process) !== invoked) throw new Error(`process ${invoked.process} has no such operation in flight`);
    this.pending.delete(invoked.process);
    return this.push({ process: invoked.process, type, f: invoked.f, value, ...(error !== undefined ? { error } : {}) }) as Op<V>;
  }

  /** A nemesis event (always `info`: faults have no outcome to check). */
  nemesis(f: string, value: unknown): void {
    this.push({ process: "nemesis", type: "info", f, value });
  }

  /** Completes everything still in flight as `info` (a run that ends with operations outstanding). */
  closeOutstanding(reason = "run ended"): void {
    for (const op of [...this.pending.values()]) this.complete(op, "info", op.value, reason);
  }

  get ops(): readonly Op[] {
    return this.events;
  }

  private push(fields: Omit<Op, "index" | "time">): Op {
    const op: Op = { index: this.events.length, time: Math.round((performance.now() - this.started) * 1e6), ...fields };
    this.events.push(op);
    return op;
  }
}

/**
 * Pairs each client invocation with its completion, in invocation order. An invocation without a
 * completion is paired with a synthetic `info` at the end of the history (it may or may not have
 * happened). A completion without an invocation is a malformed history and throws.
 */
export function pairOps<V = unknown>(ops: readonly Op[]): OpPair<V>[] {
  const open = new Map<Process, Op>();
  const pairs: { invoke: Op; complete: Op | undefined }[] = [];
  const slot = new Map<Op, number>();
  for (const op of ops) {
    if (op.process === "nemesis") continue;
    if (op.type === "invoke") {
      if (open.has(op.process)) throw new Error(`history: process ${op.process} invoked twice without completing (index ${op.index})`);
      open.set(op.process, op);
      slot.set(op, pairs.length);
      pairs.push({ invoke: op, complete: undefined });
      continue;
    }
    const inv = open.get(op.process);
    if (inv === undefined) throw new Error(`history: completion without invocation (index ${op.index}, process ${op.process})`);
    open.delete(op.process);
    pairs[slot.get(inv)!]!.complete = op;
  }
  const end = ops.length === 0 ? 0 : ops[ops.length - 1]!.index + 1;
  return pairs.map((p, i) => ({
    invoke: p.invoke as Op<V>,
    complete: (p.complete ?? { ...p.invoke, index: end + i, time: Number.MAX_SAFE_INTEGER, type: "info", error: "never completed" }) as Op<V>,
  }));
}

/** Elle-cli's JSON: one array, one object per event, in index order. */
export function toElleJson(ops: readonly Op[], mapValue: (op: Op) => unknown = (op) => op.value): string {
  const lines = ops.map((op) => JSON.stringify({
    index: op.index, time: op.time, process: op.process, type: op.type, f: op.f, value: mapValue(op),
    ...(op.error !== undefined ? { error: op.error } : {}),
  }));
  return `[${lines.join(",\n ")}]\n`;
}

export async function writeElleJson(file: string, ops: readonly Op[], mapValue?: (op: Op) => unknown): Promise<void> {
  await writeFile(file, toElleJson(ops, mapValue));
}

/** Reads a history back (as written by `toElleJson`, or any elle-cli JSON history with integer processes). */
export function parseElleJson(text: string): Op[] {
  const raw = JSON.parse(text) as unknown;
  if (!Array.isArray(raw)) throw new Error("history JSON must be an array");
  return raw.map((o: Record<string, unknown>, i) => ({
    index: typeof o["index"] === "number" ? o["index"] : i,
    time: typeof o["time"] === "number" ? o["time"] : i,
    process: o["process"] === "nemesis" ? "nemesis" : Number(o["process"]),
    type: o["type"] as OpType,
    f: typeof o["f"] === "string" ? o["f"] : "txn",
    value: o["value"],
    ...(typeof o["error"] === "string" ? { error: o["error"] } : {}),
  }));
}
