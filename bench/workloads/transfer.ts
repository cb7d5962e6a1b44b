/**
 * The bank transfer: an interactive transaction that reads two balances and updates both —
 * `SELECT balance … WHERE id = a`, `SELECT balance … WHERE id = b`, then the two updates (lower id
 * first, as a careful application does to avoid deadlocks), then COMMIT. Every round trip is a real
 * one: the client decides after the reads.
 *
 * Each system runs it at its default isolation (PostgreSQL: READ COMMITTED; SQLite and Borealis:
 * serializable, one writer at a time). The updates are relative (`balance = balance - ?`), so the sum
 * of all balances is invariant at every isolation level; `check` verifies it after the runs. A
 * serialization failure, deadlock or busy lock is retried (up to `maxAttempts`) and counted.
 */
import {
  ACCOUNTS_DDL, countRows, multiRowInsert, recreate, withRetries, type ClientContext, type ClientOp, type Workload,
  type WorkloadParams,
} from "./workload.js";
import type { BenchConnection, SqlArg } from "../systems/system.js";

const INITIAL_BALANCE = 1_000_000;

async function loadAccounts(conn: BenchConnection, params: WorkloadParams): Promise<void> {
  await recreate(conn, "accounts", ACCOUNTS_DDL);
  let next = 1;
  // Bounded: each pass inserts up to batchRows × batchesPerTxn accounts.
  while (next <= params.accounts) {
    await conn.transaction(async (tx) => {
      for (let b = 0; b < params.batchesPerTxn && next <= params.accounts; b++) {
        const n = Math.min(params.batchRows, params.accounts - next + 1);
        const args: SqlArg[] = [];
        for (let id = next; id < next + n; id++) args.push(id, INITIAL_BALANCE);
        await tx.execute(multiRowInsert("accounts", ["id", "balance"], n), args);
        next += n;
      }
    });
  }
}

export const transferWorkload: Workload = {
  name: "transfer",
  title: "Bank transfer transaction",
  description: "BEGIN; read two balances; update both (relative, lower id first); COMMIT — an interactive transaction of 5 round trips, retried on serialization/deadlock/busy errors.",
  kind: "timed",
  writes: true,
  async prepare(conn, params, progress) {
    progress(`loading ${params.accounts.toLocaleString("en-US")} accounts`);
    await loadAccounts(conn, params);
  },
  async check(conn, params) {
    const rows = await conn.execute("SELECT sum(balance) FROM accounts");
    const total = Number(rows[0]?.[0]);
    const expected = params.accounts * INITIAL_BALANCE;
    const n = await countRows(conn, "accounts");
    if (total !== expected || n !== params.accounts) {
      throw new Error(`bank invariant broken: ${n} accounts hold ${total}, expected ${params.accounts} holding ${expected}`);
    }
    return `sum of ${n.toLocaleString("en-US")} balances preserved (${total.toLocaleString("en-US")})`;
  },
  clientOp(ctx: ClientContext): ClientOp {
    return {
      async run() {
        const n = ctx.params.accounts;
        const a = 1 + Math.floor(ctx.random() * n);
        let b = 1 + Math.floor(ctx.random() * (n - 1));
        if (b >= a) b++;
        const amount = 1 + Math.floor(ctx.random() * 100);
        const { retries } = await withRetries(ctx.conn, ctx.params.maxAttempts, async (tx) => {
          const ra = await tx.execute("SELECT balance FROM accounts WHERE id = ?", [a]);
          const rb = await tx.execute("SELECT balance FROM accounts WHERE id = ?", [b]);
          if (ra.length !== 1 || rb.length !== 1) throw new Error(`transfer ${a}→${b}: account missing`);
          const [first, second] = a < b ? [[a, -amount], [b, amount]] : [[b, amount], [a, -amount]];
          await tx.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", [first[1]!, first[0]!]);
          await tx.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", [second[1]!, second[0]!]);
        });
        return { commits: 1, retries };
      },
      maxSeq: () => -1,
    };
  },
};
