/**
 * The bank checker (Jepsen's bank workload): accounts with balances, transfers between them in
 * transactions, reads of every balance in one transaction. Under snapshot isolation or anything
 * stronger, every successful read sees the same total, no negative balance and every account.
 * Pure: a history in, a verdict out.
 *
 * Operations: `f: "read"`, ok value `{ "<account>": balance, … }`; `f: "transfer"`, value
 * `{ from, to, amount }` (only its outcome matters to the statistics; correctness is in the reads).
 */
import { pairOps, type Op } from "../history.js";

export interface BankOptions {
  readonly accounts: readonly number[];
  readonly total: number;
  /** At most this many anomalies of one type are kept (all are counted). Default 8. */
  readonly maxPerType?: number;
}

export interface BankAnomaly {
  readonly type: "wrong-total" | "negative-balance" | "missing-account" | "unexpected-account" | "bad-read";
  readonly op: number;
  readonly explanation: string;
}

export interface BankResult {
  readonly valid: boolean;
  readonly anomalyTypes: string[];
  readonly counts: Record<string, number>;
  readonly anomalies: Record<string, BankAnomaly[]>;
  readonly stats: { reads: number; transfers: { ok: number; fail: number; info: number }; totals: Record<string, number> };
}

export type BankRead = Record<string, number>;
export interface Transfer { readonly from: number; readonly to: number; readonly amount: number }

export function checkBank(ops: readonly Op[], options: BankOptions): BankResult {
  const maxPerType = options.maxPerType ?? 8;
  const anomalies: Record<string, BankAnomaly[]> = {};
  const counts: Record<string, number> = {};
  const report = (type: BankAnomaly["type"], op: number, explanation: string): void => {
    counts[type] = (counts[type] ?? 0) + 1;
    const list = (anomalies[type] ??= []);
    if (list.length < maxPerType) list.push({ type, op, explanation });
  };
  const expected = new Set(options.accounts.map(String));
  const totals: Record<string, number> = {};
  const transfers = { ok: 0, fail: 0, info: 0 };
  let reads = 0;
  for (const { invoke, complete } of pairOps(ops)) {
    if (invoke.f === "transfer") {
      transfers[complete.type as "ok" | "fail" | "info"]++;
      continue;
    }
    if (invoke.f !== "read" || complete.type !== "ok") continue;
    reads++;
    const value = complete.value as BankRead | null;
    if (value === null || typeof value !== "object") {
      report("bad-read", complete.index, `read returned ${JSON.stringify(value)}`);
      continue;
    }
    let total = 0;
    for (const [account, balance] of Object.entries(value)) {
      if (!expected.has(account)) report("unexpected-account", complete.index, `read shows account ${account}, which was never created`);
      if (typeof balance !== "number" || !Number.isFinite(balance)) {
        report("bad-read", complete.index, `account ${account} has balance ${JSON.stringify(balance)}`);
        continue;
      }
      if (balance < 0) report("negative-balance", complete.index, `account ${account} has balance ${balance}`);
      total += balance;
    }
    for (const account of expected) {
      if (!(account in value)) report("missing-account", complete.index, `read lacks account ${account}`);
    }
    totals[String(total)] = (totals[String(total)] ?? 0) + 1;
    if (total !== options.total) report("wrong-total", complete.index, `balances sum to ${total}, not ${options.total}: ${JSON.stringify(value)}`);
  }
  const anomalyTypes = Object.keys(counts).sort();
  return { valid: anomalyTypes.length === 0, anomalyTypes, counts, anomalies, stats: { reads, transfers, totals } };
}
