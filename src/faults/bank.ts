/**
 * The bank workload (Jepsen's): `accounts` accounts with `initial` each; clients transfer random
 * amounts between two accounts in write transactions (refusing to overdraw) and read every balance in
 * read-only transactions. Checked by `checkers/bank.ts`: every read sums to the total and shows no
 * negative balance. Amounts up to `maxTransfer` make overdraft refusals common, so a broken isolation
 * level shows up as negative balances as well as wrong totals.
 */
import type { Client } from "@libsql/client";
import { checkBank, type BankRead, type Transfer } from "./checkers/bank.js";
import type { Op } from "./history.js";
import { inReadTxn, inWriteTxn, type Outcome, type Rng, type Workload } from "./workload.js";

export interface BankOptions {
  readonly accounts?: number;
  readonly initial?: number;
  readonly maxTransfer?: number;
  /** Share of operations that are reads. Default 0.4. */
  readonly readShare?: number;
}

export function bankWorkload(options: BankOptions = {}): Workload {
  const n = options.accounts ?? 8;
  const initial = options.initial ?? 100;
  const maxTransfer = options.maxTransfer ?? 20;
  const accounts = Array.from({ length: n }, (_, i) => i);
  const total = n * initial;

  const read = async (db: Client): Promise<BankRead> => inReadTxn(db, async (tx) => {
    const rs = await tx.execute("SELECT id, balance FROM accounts ORDER BY id");
    const out: BankRead = {};
    for (const row of rs.rows) out[String(Number(row["id"]))] = Number(row["balance"]);
    return out;
  });

  return {
    name: "bank",
    async setup(db) {
      await db.execute("CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)");
      const tx = await db.transaction("write");
      try {
        const have = Number((await tx.execute("SELECT count(*) AS n FROM accounts")).rows[0]!["n"]);
        if (have === 0) {
          for (const id of accounts) await tx.execute({ sql: "INSERT INTO accounts (id, balance) VALUES (?, ?)", args: [id, initial] });
        } else if (have !== n) throw new Error(`bank setup found ${have} accounts, expected ${n}`);
        await tx.commit();
      } finally {
        tx.close();
      }
    },
    generate(rand: Rng) {
      if (rand.next() < (options.readShare ?? 0.4)) return { f: "read", value: null };
      const [from, to] = rand.sample(accounts, 2) as [number, number];
      return { f: "transfer", value: { from, to, amount: 1 + rand.int(maxTransfer) } satisfies Transfer };
    },
    async invoke(db, f, value): Promise<Outcome> {
      if (f === "read") return { type: "ok", value: await read(db) };
      const t = value as Transfer;
      return inWriteTxn(db, value, async (tx) => {
        const rs = await tx.execute({ sql: "SELECT id, balance FROM accounts WHERE id IN (?, ?)", args: [t.from, t.to] });
        const balance = new Map(rs.rows.map((r) => [Number(r["id"]), Number(r["balance"])]));
        const fromBalance = balance.get(t.from);
        if (fromBalance === undefined || !balance.has(t.to)) return { commit: false, reason: "no such account" };
        if (fromBalance < t.amount) return { commit: false, reason: "insufficient funds" };
        await tx.execute({ sql: "UPDATE accounts SET balance = balance - ? WHERE id = ?", args: [t.amount, t.from] });
        await tx.execute({ sql: "UPDATE accounts SET balance = balance + ? WHERE id = ?", args: [t.amount, t.to] });
        return { commit: true, value };
      });
    },
    finalOps: () => [{ f: "read", value: null }],
    check(ops: readonly Op[]) {
      const r = checkBank(ops, { accounts, total });
      return { valid: r.valid, anomalyTypes: r.anomalyTypes, detail: r };
    },
    elleFiles: (ops) => [{ name: "bank.json", ops }],
  };
}
