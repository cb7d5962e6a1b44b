/**
 * The register workload: independent registers (one row each, `registers(k, v)`), each read, written
 * and compare-and-set by concurrent clients, checked for linearizability key by key
 * (`checkers/linearizable.ts`). Every written value is unique per key, so a read names the write it
 * saw. A key retires after `maxOpsPerKey` operations (the check is NP-complete: short per-key
 * histories keep it tractable); a fresh key takes its place.
 *
 * Operations are single autocommit statements: a read goes to a reader thread at the VDL read point,
 * a write or CAS to the writer. A CAS that matched no row is `fail` (it had no effect); any error on a
 * write or CAS is `info`; on a read, `fail`.
 */
import type { Client } from "@libsql/client";
import { checkLinearizable, type RegisterOpValue } from "./checkers/linearizable.js";
import type { Op } from "./history.js";
import { DefiniteFailure, type Outcome, type Rng, type Workload } from "./workload.js";

export interface RegisterOptions {
  readonly activeKeys?: number;
  readonly maxOpsPerKey?: number;
  readonly maxStepsPerKey?: number;
}

export function registerWorkload(options: RegisterOptions = {}): Workload {
  const activeKeys = options.activeKeys ?? 5;
  const maxOps = options.maxOpsPerKey ?? 300;
  const active = Array.from({ length: activeKeys }, (_, i) => i);
  const opsOn = new Map<number, number>();
  const lastValue = new Map<number, number>();
  const used = new Set<number>(active);
  let nextKey = activeKeys;
  let nextValue = 1;

  return {
    name: "register",
    async setup(db) {
      await db.execute("CREATE TABLE IF NOT EXISTS registers (k INTEGER PRIMARY KEY, v INTEGER)");
    },
    generate(rand: Rng) {
      const slot = rand.int(active.length);
      const key = active[slot]!;
      const count = (opsOn.get(key) ?? 0) + 1;
      opsOn.set(key, count);
      if (count >= maxOps) {
        active[slot] = nextKey;
        used.add(nextKey++);
      }
      const roll = rand.next();
      if (roll < 0.5) return { f: "read", value: { key, value: null } satisfies RegisterOpValue };
      const v = nextValue++;
      if (roll < 0.75) {
        lastValue.set(key, v);
        return { f: "write", value: { key, value: v } satisfies RegisterOpValue };
      }
      // Compare against the newest value handed out for this key: CAS succeeds often enough to matter.
      const expected = lastValue.get(key) ?? 0;
      lastValue.set(key, v);
      return { f: "cas", value: { key, value: [expected, v] } satisfies RegisterOpValue };
    },
    async invoke(db: Client, f, value): Promise<Outcome> {
      const op = value as RegisterOpValue;
      if (f === "read") {
        try {
          const rs = await db.execute({ sql: "SELECT v FROM registers WHERE k = ?", args: [op.key] });
          const v = rs.rows[0]?.["v"];
          return { type: "ok", value: { key: op.key, value: v === undefined || v === null ? null : Number(v) } };
        } catch (e) {
          throw new DefiniteFailure("read failed", { cause: e });
        }
      }
      if (f === "write") {
        await db.execute({ sql: "INSERT INTO registers (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", args: [op.key, op.value as number] });
        return { type: "ok", value };
      }
      const [expected, next] = op.value as readonly [number, number];
      const rs = await db.execute({ sql: "UPDATE registers SET v = ? WHERE k = ? AND v = ?", args: [next, op.key, expected] });
      return rs.rowsAffected === 1 ? { type: "ok", value } : { type: "fail", value, error: "compare failed" };
    },
    finalOps: () => [...used].sort((a, b) => a - b).map((key) => ({ f: "read", value: { key, value: null } })),
    check(ops: readonly Op[]) {
      const r = checkLinearizable(ops, options.maxStepsPerKey !== undefined ? { maxStepsPerKey: options.maxStepsPerKey } : {});
      return { valid: r.valid, anomalyTypes: r.valid === true ? [] : r.valid === false ? ["nonlinearizable"] : ["unknown"], detail: r };
    },
    elleFiles(ops) {
      // elle-cli's cas-register model checks one register: one file per key, values without the key.
      const keys = new Map<number, Op[]>();
      for (const op of ops) {
        if (op.process === "nemesis") continue;
        const key = (op.value as RegisterOpValue).key;
        const list = keys.get(key) ?? [];
        list.push(op);
        keys.set(key, list);
      }
      return [...keys].map(([key, list]) => ({
        name: `register-${key}.json`, ops: list, mapValue: (op: Op) => (op.value as RegisterOpValue).value,
      }));
    },
  };
}
