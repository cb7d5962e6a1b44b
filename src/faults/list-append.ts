/**
 * The list-append workload (Elle's): transactions of 1–4 micro-operations, each an append of a unique
 * value to a key's list or a read of a whole list, over a rotating window of `activeKeys` keys (a key
 * retires after `maxAppendsPerKey` appends, so lists stay short and the checker fast, while the
 * history keeps crossing fresh keys). A list is one row, `lists(k, v TEXT)`, extended with
 * `v || ',' || value`, so an append is a read-modify-write inside SQLite.
 *
 * Transactions with an append run as write transactions (BEGIN IMMEDIATE, one batch, COMMIT);
 * read-only ones as read-only transactions, which the engine serves from reader threads at the VDL
 * read point — both paths are checked together, with real-time edges (strict serializability).
 */
import type { Client, InStatement } from "@libsql/client";
import { checkListAppend, type MicroOp } from "./checkers/list-append.js";
import type { Op } from "./history.js";
import { inReadTxn, inWriteTxn, type Outcome, type Rng, type Workload } from "./workload.js";

export interface ListAppendOptions {
  readonly activeKeys?: number;
  readonly maxAppendsPerKey?: number;
  readonly maxOps?: number;
}

const APPEND_SQL = "INSERT INTO lists (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = v || ',' || excluded.v";
const READ_SQL = "SELECT v FROM lists WHERE k = ?";

function parseList(v: unknown): number[] {
  if (v === null || v === undefined || v === "") return [];
  return String(v).split(",").map(Number);
}

export function listAppendWorkload(options: ListAppendOptions = {}): Workload {
  const activeKeys = options.activeKeys ?? 10;
  const maxAppends = options.maxAppendsPerKey ?? 64;
  const maxOps = options.maxOps ?? 4;
  const active = Array.from({ length: activeKeys }, (_, i) => i);
  const appends = new Map<number, number>();
  let nextKey = activeKeys;
  let nextValue = 1;
  const used = new Set<number>(active);

  const statements = (mops: readonly MicroOp[]): InStatement[] =>
    mops.map((m) => (m[0] === "append" ? { sql: APPEND_SQL, args: [m[1], String(m[2])] } : { sql: READ_SQL, args: [m[1]] }));
  const fill = (mops: readonly MicroOp[], results: { rows: readonly Record<string, unknown>[] }[]): MicroOp[] =>
    mops.map((m, i) => (m[0] === "r" ? ["r", m[1], parseList(results[i]!.rows[0]?.["v"])] as const : m));

  return {
    name: "list-append",
    async setup(db) {
      await db.execute("CREATE TABLE IF NOT EXISTS lists (k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    },
    generate(rand: Rng) {
      const mops: MicroOp[] = [];
      for (let i = 0, n = 1 + rand.int(maxOps); i < n; i++) {
        const slot = rand.int(active.length);
        const k = active[slot]!;
        if (rand.next() < 0.5) {
          mops.push(["append", k, nextValue++]);
          const count = (appends.get(k) ?? 0) + 1;
          appends.set(k, count);
          if (count >= maxAppends) {
            active[slot] = nextKey;
            used.add(nextKey++);
          }
        } else mops.push(["r", k, null]);
      }
      return { f: "txn", value: mops };
    },
    async invoke(db: Client, _f, value): Promise<Outcome> {
      const mops = value as MicroOp[];
      if (mops.every((m) => m[0] === "r")) {
        const results = await inReadTxn(db, (tx) => tx.batch(statements(mops)));
        return { type: "ok", value: fill(mops, results) };
      }
      return inWriteTxn(db, value, async (tx) => ({ commit: true, value: fill(mops, await tx.batch(statements(mops))) }));
    },
    finalOps() {
      const keys = [...used].sort((a, b) => a - b);
      const out: { f: string; value: unknown }[] = [];
      for (let i = 0; i < keys.length; i += 16) out.push({ f: "txn", value: keys.slice(i, i + 16).map((k) => ["r", k, null]) });
      return out;
    },
    check(ops: readonly Op[]) {
      const r = checkListAppend(ops);
      return { valid: r.valid, anomalyTypes: r.anomalyTypes, detail: r };
    },
    elleFiles: (ops) => [{ name: "list-append.json", ops }],
  };
}
