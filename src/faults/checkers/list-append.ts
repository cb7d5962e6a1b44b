/**
 * An Elle-style checker for list-append histories (Kingsbury & Alvaro, "Elle: Inferring Isolation
 * Anomalies from Experimental Observations", VLDB 2020; github.com/jepsen-io/elle). Pure: a history in,
 * a verdict out.
 *
 * Transactions are lists of micro-operations `["append", k, v]` and `["r", k, list]`; every value is
 * appended to a key at most once, so a read's list names the transactions that wrote it, and the
 * longest read of a key gives that key's version order (every other read must be a prefix of it).
 *
 * Direct checks (no graph):
 * - internal: a transaction's read disagrees with its own earlier reads and appends;
 * - duplicate-elements: a read holds a value twice; duplicate-appends: the history appends a value twice;
 * - garbage-read: a read holds a value nobody appended;
 * - G1a (aborted read): a read holds a value appended by a transaction that failed;
 * - G1b (intermediate read): a read ends at a value its writer followed with another append to the key;
 * - incompatible-order: two reads of a key that are not prefixes of one another;
 * - lost-update: two committed transactions read the same version of a key and both appended to it;
 * - lost-write (with real-time edges): an acknowledged append missing from a read that began after it.
 *
 * Dependency graph over committed transactions (ok, and info whose appends someone observed): ww
 * (consecutive versions), wr (a read ending at a version → from its writer), rw (a read → the writer
 * of the next version); optionally process order and real-time order (a transaction that completed
 * before another was invoked precedes it). Cycles are found with Tarjan's SCCs and classified as Adya's
 * G0 (ww only), G1c (ww + wr), G-single (exactly one rw) and G2-item (several rw). Cycles that need
 * process or real-time edges are reported as `<type>-process` / `<type>-realtime`: they violate strict
 * serializability (and session guarantees) but not serializability.
 *
 * Sound, not complete (as Elle): a reported anomaly is real if the history is; absence proves nothing.
 */
import { pairOps, type Op, type OpPair } from "../history.js";
import { ALL_EDGES, DEPENDENCY, Graph, PROCESS, REALTIME, RW, WR, WW, edgeNames } from "./graph.js";

export type MicroOp = readonly ["append", number, number] | readonly ["r", number, readonly number[] | null];
export type Txn = readonly MicroOp[];

export interface Anomaly {
  readonly type: string;
  /** History indices of the completions involved (ok/info/fail ops), in cycle order for cycles. */
  readonly ops: readonly number[];
  readonly explanation: string;
}

export interface ListAppendOptions {
  /** Add process-order edges (default true). */
  readonly processEdges?: boolean;
  /** Add real-time edges (default true): strict serializability. */
  readonly realtimeEdges?: boolean;
  /** At most this many anomalies of one type are kept (all are counted). Default 8. */
  readonly maxPerType?: number;
}

export interface ListAppendResult {
  readonly valid: boolean;
  readonly anomalyTypes: string[];
  readonly counts: Record<string, number>;
  readonly anomalies: Record<string, Anomaly[]>;
  readonly stats: { ok: number; fail: number; info: number; keys: number; graphNodes: number; graphEdges: number; readsChecked: number };
}

interface T {
  readonly id: number;
  readonly pair: OpPair<Txn>;
  readonly type: "ok" | "fail" | "info";
  /** The micro-ops as completed (ok: reads filled in; info/fail: as invoked, reads unknown). */
  readonly mops: Txn;
}

/** The anomalies that make a history invalid (all of them, here; kept as a list for callers). */
export function checkListAppend(ops: readonly Op[], options: ListAppendOptions = {}): ListAppendResult {
  const maxPerType = options.maxPerType ?? 8;
  const anomalies: Record<string, Anomaly[]> = {};
  const counts: Record<string, number> = {};
  const report = (type: string, opsInvolved: readonly number[], explanation: string): void => {
    counts[type] = (counts[type] ?? 0) + 1;
    const list = (anomalies[type] ??= []);
    if (list.length < maxPerType) list.push({ type, ops: opsInvolved, explanation });
  };

  const txns: T[] = [];
  for (const pair of pairOps<Txn>(ops)) {
    if (pair.invoke.f !== "txn") continue;
    const type = pair.complete.type as T["type"];
    const mops = (type === "ok" ? pair.complete.value : pair.invoke.value) ?? [];
    txns.push({ id: txns.length, pair, type, mops });
  }
  const idx = (t: T): number => t.pair.complete.index;

  // ---- who appended what
  const writer = new Map<number, Map<number, T>>(); // key → value → txn
  const appendsTo = new Map<T, Map<number, number[]>>(); // txn → key → its appends, in order
  for (const t of txns) {
    const mine = new Map<number, number[]>();
    for (const m of t.mops) {
      if (m[0] !== "append") continue;
      const [, k, v] = m;
      const byValue = writer.get(k) ?? new Map<number, T>();
      writer.set(k, byValue);
      const prev = byValue.get(v);
      if (prev !== undefined && prev !== t) report("duplicate-appends", [idx(prev), idx(t)], `value ${v} appended to key ${k} twice`);
      else if (prev === undefined) byValue.set(v, t);
      const list = mine.get(k) ?? [];
      list.push(v);
      mine.set(k, list);
    }
    appendsTo.set(t, mine);
  }
  const writerOf = (k: number, v: number): T | undefined => writer.get(k)?.get(v);

  // ---- per-transaction checks on committed reads
  const okTxns = txns.filter((t) => t.type === "ok");
  /** Each ok txn's external reads: key → the list read before the txn's own first append to it. */
  const externalReads = new Map<T, Map<number, readonly number[]>>();
  const readsByKey = new Map<number, { t: T; list: readonly number[] }[]>();
  let readsChecked = 0;
  for (const t of okTxns) {
    const known = new Map<number, number[] | null>(); // key → the list this txn must see now (null: unknown prefix)
    const suffix = new Map<number, number[]>(); // own appends since the last read, when the prefix is unknown
    const external = new Map<number, readonly number[]>();
    for (const m of t.mops) {
      const k = m[1];
      if (m[0] === "append") {
        const kn = known.get(k);
        if (kn !== undefined && kn !== null) kn.push(m[2]);
        else {
          known.set(k, null);
          suffix.set(k, [...(suffix.get(k) ?? []), m[2]]);
        }
        continue;
      }
      const list = m[2];
      if (list === null) {
        report("internal", [idx(t)], `ok transaction has a read of key ${k} with no result`);
        continue;
      }
      readsChecked++;
      const rk = readsByKey.get(k) ?? [];
      rk.push({ t, list });
      readsByKey.set(k, rk);
      if (!known.has(k)) external.set(k, list);
      const kn = known.get(k);
      if (kn !== undefined && kn !== null && !sameList(kn, list)) {
        report("internal", [idx(t)], `read of key ${k} gave ${show(list)}, but this transaction expected ${show(kn)}`);
      } else if (kn === null) {
        const suf = suffix.get(k) ?? [];
        if (!endsWith(list, suf)) report("internal", [idx(t)], `read of key ${k} gave ${show(list)}, which does not end with this transaction's own appends ${show(suf)}`);
      }
      known.set(k, [...list]);
      suffix.delete(k);

      const seen = new Set<number>();
      for (const v of list) {
        if (seen.has(v)) {
          report("duplicate-elements", [idx(t)], `read of key ${k} holds ${v} more than once: ${show(list)}`);
          break;
        }
        seen.add(v);
      }
      for (const v of list) {
        const w = writerOf(k, v);
        if (w === undefined) report("garbage-read", [idx(t)], `read of key ${k} holds ${v}, which no transaction appended`);
        else if (w.type === "fail") report("G1a", [idx(w), idx(t)], `read of key ${k} holds ${v}, appended by a transaction that failed`);
      }
      const last = list[list.length - 1];
      if (last !== undefined) {
        const w = writerOf(k, last);
        if (w !== undefined && w !== t) {
          const theirs = appendsTo.get(w)!.get(k)!;
          if (theirs[theirs.length - 1] !== last) {
            report("G1b", [idx(w), idx(t)], `read of key ${k} ends at ${last}, an intermediate append of a transaction that then appended ${show(theirs.slice(theirs.indexOf(last) + 1))}`);
          }
        }
      }
    }
    externalReads.set(t, external);
  }

  // ---- version orders: the longest read of each key; every read must be a prefix of it
  const order = new Map<number, readonly number[]>();
  for (const [k, reads] of readsByKey) {
    let longest = reads[0]!;
    for (const r of reads) if (r.list.length > longest.list.length) longest = r;
    for (const r of reads) {
      if (!isPrefix(r.list, longest.list)) {
        report("incompatible-order", [idx(r.t), idx(longest.t)], `reads of key ${k} disagree: ${show(r.list)} is not a prefix of ${show(longest.list)}`);
      }
    }
    order.set(k, longest.list);
  }

  // ---- lost update: committed transactions that read the same version of a key and both appended to it
  const readModifyWrites = new Map<string, T[]>(); // "key version" → committed txns that read it, then appended
  for (const t of okTxns) {
    for (const [k, read] of externalReads.get(t)!) {
      if (!appendsTo.get(t)!.has(k)) continue;
      const version = `${k} ${read.length === 0 ? "[]" : String(read[read.length - 1])}`;
      const list = readModifyWrites.get(version) ?? [];
      list.push(t);
      readModifyWrites.set(version, list);
    }
  }
  for (const [version, ts] of readModifyWrites) {
    if (ts.length > 1) {
      const [k, v] = version.split(" ");
      report("lost-update", ts.map(idx), `${ts.length} committed transactions read key ${k} at version ${v} and each appended to it`);
    }
  }

  // ---- lost writes (strict serializability): an append acknowledged before a read of its key was
  // invoked must be in that read. Only the first such read is checked per append: a later, shorter
  // read is a stale read, which the real-time cycles report.
  if (options.realtimeEdges ?? true) {
    for (const [k, reads] of readsByKey) {
      const sorted = [...reads].sort((a, b) => a.t.pair.invoke.index - b.t.pair.invoke.index);
      for (const [v, w] of writer.get(k) ?? []) {
        if (w.type !== "ok") continue;
        const done = w.pair.complete.index;
        let lo = 0, hi = sorted.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (sorted[mid]!.t.pair.invoke.index < done) lo = mid + 1;
          else hi = mid;
        }
        const r = sorted[lo];
        if (r !== undefined && r.t !== w && !r.list.includes(v)) {
          report("lost-write", [idx(w), idx(r.t)], `append of ${v} to key ${k} was acknowledged before a read of the key began, which does not hold it: ${show(r.list)}`);
        }
      }
    }
  }

  // ---- the dependency graph
  const observed = new Set<T>();
  for (const [k, list] of order) {
    for (const v of list) {
      const w = writerOf(k, v);
      if (w !== undefined) observed.add(w);
    }
  }
  const inGraph = (t: T): boolean => t.type === "ok" || (t.type === "info" && observed.has(t));
  // Committed appends nobody read: a correct store puts them after everything the longest read holds
  // (a read that held a later value would hold them too), in some order we do not know. So the
  // longest read's last writer precedes them (ww) and every read of the full known order precedes
  // them (rw): edges implied by the unknown chain of versions, so cycles through them keep their type.
  const unread = new Map<number, T[]>();
  for (const [k, byValue] of writer) {
    const seen = new Set(order.get(k) ?? []);
    for (const [v, t] of byValue) {
      if (t.type !== "ok" || seen.has(v)) continue;
      const list = unread.get(k) ?? [];
      if (!list.includes(t)) list.push(t);
      unread.set(k, list);
    }
  }
  const g = new Graph();
  for (const t of txns) if (inGraph(t)) g.addNode(t.id);
  let edgesAdded = 0;
  const add = (a: T, b: T, kind: number): void => {
    if (a === b || !inGraph(a) || !inGraph(b)) return;
    g.addEdge(a.id, b.id, kind);
    edgesAdded++;
  };
  for (const [k, list] of order) {
    for (let i = 0; i + 1 < list.length; i++) {
      const a = writerOf(k, list[i]!);
      const b = writerOf(k, list[i + 1]!);
      if (a !== undefined && b !== undefined) add(a, b, WW);
    }
    const lastValue = list[list.length - 1];
    const lastWriter = lastValue === undefined ? undefined : writerOf(k, lastValue);
    if (lastWriter !== undefined) for (const t of unread.get(k) ?? []) add(lastWriter, t, WW);
  }
  for (const t of okTxns) {
    for (const [k, read] of externalReads.get(t)!) {
      const full = order.get(k) ?? [];
      if (!isPrefix(read, full)) continue; // reported as incompatible-order; no edges from a read we cannot place
      if (read.length > 0) {
        const w = writerOf(k, read[read.length - 1]!);
        if (w !== undefined) add(w, t, WR);
      }
      const nextValue = full[read.length];
      if (nextValue !== undefined) {
        const w = writerOf(k, nextValue);
        if (w !== undefined) add(t, w, RW);
      } else {
        for (const w of unread.get(k) ?? []) add(t, w, RW);
      }
    }
  }
  if (options.processEdges ?? true) {
    const last = new Map<number, T>();
    for (const t of okTxns) {
      const p = t.pair.invoke.process as number;
      const prev = last.get(p);
      if (prev !== undefined) add(prev, t, PROCESS);
      last.set(p, t);
    }
  }
  if (options.realtimeEdges ?? true) {
    for (const [a, b] of realtimeEdges(txns.filter(inGraph))) add(a, b, REALTIME);
  }

  // ---- cycles: first with dependency edges only (serializability), then with process/real-time edges
  const describe = (cycle: number[], base: string): Anomaly => {
    const parts: string[] = [];
    for (let i = 0; i + 1 < cycle.length; i++) {
      const a = txns[cycle[i]!]!;
      const b = txns[cycle[i + 1]!]!;
      parts.push(`T${idx(a)} -${edgeNames(g.edge(a.id, b.id)).join("/")}-> T${idx(b)}`);
    }
    return { type: base, ops: cycle.slice(0, -1).map((i) => idx(txns[i]!)), explanation: parts.join(", ") };
  };
  const cyclic = new Set<number>();
  for (const scc of g.sccs(DEPENDENCY)) {
    const found = classify(g, new Set(scc), 0);
    if (found === undefined) continue; // cannot happen: an SCC of dependency edges has a dependency cycle
    for (const n of scc) cyclic.add(n);
    const a = describe(found.cycle, found.type);
    report(a.type, a.ops, a.explanation);
  }
  const extra = ((options.processEdges ?? true) ? PROCESS : 0) | ((options.realtimeEdges ?? true) ? REALTIME : 0);
  if (extra !== 0) {
    for (const scc of g.sccs(ALL_EDGES)) {
      if (scc.some((n) => cyclic.has(n))) continue;
      const found = classify(g, new Set(scc), extra);
      if (found === undefined) continue;
      const usesRealtime = found.cycle.some((n, i) => i + 1 < found.cycle.length && (g.edge(n, found.cycle[i + 1]!) & (DEPENDENCY | PROCESS)) === 0);
      const a = describe(found.cycle, `${found.type}-${usesRealtime ? "realtime" : "process"}`);
      report(a.type, a.ops, a.explanation);
    }
  }

  const anomalyTypes = Object.keys(counts).sort();
  return {
    valid: anomalyTypes.length === 0,
    anomalyTypes,
    counts,
    anomalies,
    stats: {
      ok: okTxns.length,
      fail: txns.filter((t) => t.type === "fail").length,
      info: txns.filter((t) => t.type === "info").length,
      keys: order.size,
      graphNodes: g.nodes.length,
      graphEdges: edgesAdded,
      readsChecked,
    },
  };
}

/**
 * Finds one cycle in `scc` and names it after the weakest isolation level it violates: G0 (ww only),
 * G1c (ww/wr), G-single (exactly one rw), G2-item (rw, several). `free` edges (process, real time)
 * may join any cycle. The cycle is returned as nodes, first = last.
 */
function classify(g: Graph, scc: ReadonlySet<number>, free: number): { type: string; cycle: number[] } | undefined {
  const tryMask = (mask: number): number[] | undefined => {
    for (const sub of g.sccs(mask, scc)) {
      const start = sub[0]!;
      const cycle = g.path(start, start, mask, new Set(sub));
      if (cycle !== undefined) return cycle;
    }
    return undefined;
  };
  const g0 = tryMask(WW | free);
  if (g0 !== undefined) return { type: "G0", cycle: g0 };
  const g1c = tryMask(WW | WR | free);
  if (g1c !== undefined) return { type: "G1c", cycle: g1c };
  // G-single: one rw edge a → b closed by a path b ⇝ a without rw edges.
  let tried = 0;
  for (const a of scc) {
    for (const [b, mask] of g.out.get(a) ?? []) {
      if ((mask & RW) === 0 || !scc.has(b)) continue;
      if (++tried > 5000) break; // bounded effort; G2-item below still reports the cycle
      const back = g.path(b, a, WW | WR | free, scc);
      if (back !== undefined) return { type: "G-single", cycle: [a, ...back] };
    }
  }
  const g2 = tryMask(DEPENDENCY | free);
  if (g2 !== undefined) return { type: "G2-item", cycle: g2 };
  return undefined;
}

/**
 * Real-time precedence as a transitively reduced edge set: T1 → T2 when T1 completed (ok) before T2
 * was invoked. Each invocation links from the current frontier of completed operations; a completion
 * removes from the frontier everything that already precedes it.
 */
function realtimeEdges(txns: readonly T[]): [T, T][] {
  const events: { at: number; kind: "invoke" | "complete"; t: T }[] = [];
  for (const t of txns) {
    events.push({ at: t.pair.invoke.index, kind: "invoke", t });
    if (t.type === "ok") events.push({ at: t.pair.complete.index, kind: "complete", t });
  }
  events.sort((a, b) => a.at - b.at);
  const frontier = new Set<T>();
  const preds = new Map<T, T[]>();
  const edges: [T, T][] = [];
  for (const e of events) {
    if (e.kind === "invoke") {
      const p = [...frontier];
      preds.set(e.t, p);
      for (const a of p) edges.push([a, e.t]);
    } else {
      for (const a of preds.get(e.t) ?? []) frontier.delete(a);
      frontier.add(e.t);
    }
  }
  return edges;
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function isPrefix(a: readonly number[], b: readonly number[]): boolean {
  return a.length <= b.length && a.every((x, i) => x === b[i]);
}

function endsWith(list: readonly number[], suffix: readonly number[]): boolean {
  if (suffix.length > list.length) return false;
  const off = list.length - suffix.length;
  return suffix.every((x, i) => list[off + i] === x);
}

function show(list: readonly number[]): string {
  return list.length <= 12 ? `[${list.join(",")}]` : `[${list.slice(0, 5).join(",")},…(${list.length - 10} more)…,${list.slice(-5).join(",")}]`;
}
