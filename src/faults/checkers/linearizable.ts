/**
 * A linearizability checker for single registers (read / write / compare-and-set), one key at a time
 * (P-compositionality: a history is linearizable iff each key's sub-history is; Herlihy & Wing). The
 * search is Wing & Gong's, with Lowe's improvements as in Porcupine (github.com/anishathalye/porcupine):
 * a doubly linked list of call/return entries; linearize a pending call whose model step accepts it,
 * lift it out, backtrack when a return is reached before its call was linearized; a cache of
 * (linearized set, state) pairs prunes repeated states. Pure.
 *
 * Indeterminate operations (`info`) have their return at infinity: they may take effect at any point
 * after their call or not at all (placed last, a write or CAS changes nothing anyone observed). Reads
 * that are `info` observed nothing and are dropped; `fail` operations did not happen and are dropped
 * (a CAS whose comparison failed is recorded as `fail`, as in Knossos).
 *
 * The problem is NP-complete, so every key's search has a step budget; a key that exceeds it is
 * reported `unknown`, and a history with an unknown key is never reported as linearizable.
 */
import { pairOps, type Op } from "../history.js";

/** Register values; `null` is "no value yet" (the row does not exist). */
export type RegValue = number | null;

export interface RegisterOpValue {
  readonly key: number;
  /** read: the value read (null in the invocation); write: the value; cas: [expected, new]. */
  readonly value: RegValue | readonly [number, number];
}

export interface LinearizableOptions {
  /** Search steps per key before giving up with "unknown". Default 2,000,000. */
  readonly maxStepsPerKey?: number;
  /** The register's value before any operation. Default null. */
  readonly initial?: RegValue;
}

export interface KeyResult {
  readonly key: number;
  readonly valid: boolean | "unknown";
  readonly ops: number;
  readonly steps: number;
  /** For a non-linearizable key: the history index of the first completion the search could not get past. */
  readonly stuckAt?: number;
  readonly explanation?: string;
}

export interface LinearizableResult {
  readonly valid: boolean | "unknown";
  readonly keys: number;
  readonly invalidKeys: KeyResult[];
  readonly unknownKeys: KeyResult[];
  readonly stats: { ops: number; steps: number; maxStepsForOneKey: number };
}

interface LinOp {
  readonly id: number;
  readonly f: "read" | "write" | "cas";
  readonly input: RegValue | readonly [number, number];
  readonly output: RegValue;
  readonly info: boolean;
  readonly callIndex: number;
  readonly returnIndex: number;
}

interface Entry {
  readonly op: LinOp;
  readonly isCall: boolean;
  /** For a call entry: its return entry. */
  match: Entry | undefined;
  prev: Entry | undefined;
  next: Entry | undefined;
}

export function checkLinearizable(ops: readonly Op[], options: LinearizableOptions = {}): LinearizableResult {
  const maxSteps = options.maxStepsPerKey ?? 2_000_000;
  const byKey = new Map<number, LinOp[]>();
  for (const { invoke, complete } of pairOps<RegisterOpValue>(ops)) {
    const f = invoke.f;
    if (f !== "read" && f !== "write" && f !== "cas") continue;
    if (complete.type === "fail") continue;
    if (f === "read" && complete.type === "info") continue;
    const key = invoke.value.key;
    const list = byKey.get(key) ?? [];
    byKey.set(key, list);
    list.push({
      id: list.length,
      f,
      input: invoke.value.value,
      output: f === "read" ? (complete.value.value as RegValue) : null,
      info: complete.type === "info",
      callIndex: invoke.index,
      returnIndex: complete.type === "info" ? Number.POSITIVE_INFINITY : complete.index,
    });
  }
  const invalidKeys: KeyResult[] = [];
  const unknownKeys: KeyResult[] = [];
  let steps = 0;
  let maxForOne = 0;
  let opCount = 0;
  for (const [key, list] of [...byKey].sort((a, b) => a[0] - b[0])) {
    const r = checkKey(key, list, options.initial ?? null, maxSteps);
    steps += r.steps;
    opCount += list.length;
    maxForOne = Math.max(maxForOne, r.steps);
    if (r.valid === false) invalidKeys.push(r);
    else if (r.valid === "unknown") unknownKeys.push(r);
  }
  const valid = invalidKeys.length > 0 ? false : unknownKeys.length > 0 ? "unknown" : true;
  return { valid, keys: byKey.size, invalidKeys, unknownKeys, stats: { ops: opCount, steps, maxStepsForOneKey: maxForOne } };
}

/** The register model: the state after `op`, or undefined if `op` cannot take effect in `state`. */
function step(state: RegValue, op: LinOp): { ok: boolean; state: RegValue } {
  switch (op.f) {
    case "read":
      return { ok: op.output === state, state };
    case "write":
      return { ok: true, state: op.input as RegValue };
    case "cas": {
      const [expected, next] = op.input as readonly [number, number];
      if (state === expected) return { ok: true, state: next };
      // An indeterminate CAS whose comparison would fail is simply one that had no effect.
      return { ok: op.info, state };
    }
  }
}

function checkKey(key: number, ops: readonly LinOp[], initial: RegValue, maxSteps: number): KeyResult {
  // The entry list, in real-time order; info returns at the end, in call order.
  const events: { at: number; entry: Entry }[] = [];
  for (const op of ops) {
    const call: Entry = { op, isCall: true, match: undefined, prev: undefined, next: undefined };
    const ret: Entry = { op, isCall: false, match: undefined, prev: undefined, next: undefined };
    call.match = ret;
    events.push({ at: op.callIndex, entry: call });
    events.push({ at: op.returnIndex === Number.POSITIVE_INFINITY ? Number.MAX_SAFE_INTEGER - ops.length + op.id : op.returnIndex, entry: ret });
  }
  events.sort((a, b) => a.at - b.at);
  const head: Entry = { op: undefined as never, isCall: false, match: undefined, prev: undefined, next: undefined };
  let tail = head;
  for (const { entry } of events) {
    tail.next = entry;
    entry.prev = tail;
    tail = entry;
  }

  const lift = (call: Entry): void => {
    call.prev!.next = call.next;
    if (call.next !== undefined) call.next.prev = call.prev;
    const ret = call.match!;
    ret.prev!.next = ret.next;
    if (ret.next !== undefined) ret.next.prev = ret.prev;
  };
  const unlift = (call: Entry): void => {
    const ret = call.match!;
    ret.prev!.next = ret;
    if (ret.next !== undefined) ret.next.prev = ret;
    call.prev!.next = call;
    if (call.next !== undefined) call.next.prev = call;
  };

  const words = Math.ceil(ops.length / 32) || 1;
  const linearized = new Uint32Array(words);
  const cache = new Set<string>();
  const cacheKey = (state: RegValue): string => `${linearized.join(",")}|${state}`;
  const stack: { call: Entry; state: RegValue }[] = [];
  let state = initial;
  let entry = head.next;
  let steps = 0;
  let deepest = 0;
  let stuckDepth = -1;
  let stuckAt: number | undefined;
  while (head.next !== undefined) {
    if (++steps > maxSteps) return { key, valid: "unknown", ops: ops.length, steps, explanation: `search exceeded ${maxSteps} steps` };
    if (entry === undefined) break; // cannot happen: the list ends with a return entry
    if (entry.isCall) {
      const r = step(state, entry.op);
      if (r.ok) {
        const id = entry.op.id;
        linearized[id >>> 5]! |= 1 << (id & 31);
        const k = cacheKey(r.state);
        if (!cache.has(k)) {
          cache.add(k);
          stack.push({ call: entry, state });
          state = r.state;
          lift(entry);
          if (stack.length > deepest) deepest = stack.length;
          entry = head.next;
          continue;
        }
        linearized[id >>> 5]! &= ~(1 << (id & 31));
      }
      entry = entry.next;
      continue;
    }
    // A return whose call is not linearized yet: this branch is dead; backtrack.
    if (stack.length > stuckDepth) {
      stuckDepth = stack.length;
      stuckAt = entry.op.returnIndex;
    }
    const top = stack.pop();
    if (top === undefined) {
      return {
        key, valid: false, ops: ops.length, steps, stuckAt: stuckAt ?? entry.op.returnIndex,
        explanation: `no linearization: at most ${deepest} of ${ops.length} operations could be ordered; the search could not get past the completion at index ${entry.op.returnIndex}`,
      };
    }
    state = top.state;
    const id = top.call.op.id;
    linearized[id >>> 5]! &= ~(1 << (id & 31));
    unlift(top.call);
    entry = top.call.next;
  }
  return { key, valid: true, ops: ops.length, steps };
}
