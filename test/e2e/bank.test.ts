/**
 * MVCC end to end (invariant 7, issue 3): the bank. N accounts on a real cluster; several writer
 * clients move money between them through `@libsql/client` — interactive `transaction("write")`
 * (read the balance, refuse to overdraw, move) and conditional `batch(..., "write")` transfers —
 * while reader clients check every snapshot:
 *   - `transaction("read")`: the balances read in two statements, with writers committing between
 *     them, are identical (one snapshot), and the halves read separately add up to the total;
 *   - `batch(..., "read")` and plain autocommit `SELECT sum(balance)`: the total, and no negative
 *     balance, in every answer.
 * Faults: a storage node killed (-9) during the first phase; the writer killed (-9) and restarted
 * during the second. After each phase the balances are checked exactly against the recorded outcome
 * of every transfer (acknowledged ones applied, failed ones not, the few unknown ones — in flight when
 * the writer died — all-or-nothing each), then `PRAGMA integrity_check` and the writer's `/health`.
 *
 * Transfers are drawn from a printed seed (replay with BOREALIS_SEED=<seed>); timing still varies.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import type { Client } from "@libsql/client";
import { ProcessCluster } from "../../src/testing/process-cluster.js";
import { Rng, assertHealthy, boundedClient, errorCode, outcomeOf, seedFromEnv, sleep, type Outcome } from "./helpers.js";

const ACCOUNTS = 40;
const INITIAL = 1000;
const TOTAL = ACCOUNTS * INITIAL;
const WRITERS = 4;
const READERS = 3;

interface Transfer {
  readonly from: number;
  readonly to: number;
  readonly amount: number;
  outcome: Outcome | "refused";
}

class Bank {
  readonly transfers: Transfer[] = [];
  readonly errors = new Map<string, number>();
  readonly reads = { readTx: 0, readBatch: 0, plain: 0 };
  readonly violations: string[] = [];
  private stopping = false;
  private running: Promise<void>[] = [];

  constructor(private readonly url: string, private readonly seed: number) {}

  start(round: number): void {
    this.stopping = false;
    this.running = [
      ...Array.from({ length: WRITERS }, (_, w) => this.writer(new Rng(this.seed + 1000 * round + w), w)),
      ...Array.from({ length: READERS }, (_, r) => this.reader(r)),
    ];
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.running);
    this.running = [];
  }

  count(o: Transfer["outcome"]): number {
    return this.transfers.filter((t) => t.outcome === o).length;
  }

  summary(): string {
    const errs = [...this.errors].map(([k, v]) => `${k}×${v}`).join(", ");
    return `transfers: ${this.count("acked")} acked, ${this.count("refused")} refused (funds), ${this.count("failed")} failed, ` +
      `${this.count("unknown")} unknown${errs ? ` (${errs})` : ""}; snapshots checked: ${this.reads.readTx} read transactions, ` +
      `${this.reads.readBatch} read batches, ${this.reads.plain} plain reads`;
  }

  private note(e: unknown): void {
    const code = errorCode(e).slice(0, 60);
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }

  private violation(what: string): void {
    if (this.violations.length < 20) this.violations.push(what);
  }

  private async writer(rng: Rng, w: number): Promise<void> {
    const db = boundedClient(this.url, 30_000);
    try {
      for (let i = 0; i < 100_000 && !this.stopping; i++) {
        const from = rng.int(ACCOUNTS);
        const to = (from + 1 + rng.int(ACCOUNTS - 1)) % ACCOUNTS;
        const amount = 1 + rng.int(150);
        const t: Transfer = { from, to, amount, outcome: "unknown" };
        this.transfers.push(t);
        try {
          if ((i + w) % 3 === 0) {
            // One batch: the debit only if funds suffice; the credit only if the debit happened.
            const rs = await db.batch([
              { sql: "UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ?", args: [amount, from, amount] },
              { sql: "UPDATE accounts SET balance = balance + ? WHERE id = ? AND changes() = 1", args: [amount, to] },
            ], "write");
            t.outcome = rs[0]!.rowsAffected === 1 ? "acked" : "refused";
            if (rs[0]!.rowsAffected !== rs[1]!.rowsAffected) this.violation(`batch transfer moved ${rs[0]!.rowsAffected}/${rs[1]!.rowsAffected} rows`);
          } else {
            const tx = await db.transaction("write");
            try {
              const bal = Number((await tx.execute({ sql: "SELECT balance FROM accounts WHERE id = ?", args: [from] })).rows[0]!["balance"]);
              if (bal < amount) {
                await tx.rollback();
                t.outcome = "refused";
              } else {
                await tx.execute({ sql: "UPDATE accounts SET balance = balance - ? WHERE id = ?", args: [amount, from] });
                await tx.execute({ sql: "UPDATE accounts SET balance = balance + ? WHERE id = ?", args: [amount, to] });
                await tx.commit();
                t.outcome = "acked";
              }
            } finally {
              tx.close();
            }
          }
        } catch (e) {
          t.outcome = outcomeOf(e);
          this.note(e);
          await sleep(50);
        }
      }
    } finally {
      db.close();
    }
  }

  private async reader(r: number): Promise<void> {
    const db = boundedClient(this.url, 30_000);
    try {
      for (let i = 0; i < 100_000 && !this.stopping; i++) {
        try {
          if (i % 3 === r % 3) await this.readTransaction(db);
          else if (i % 3 === (r + 1) % 3) await this.readBatch(db);
          else await this.plainRead(db);
        } catch (e) {
          this.note(e);
          await sleep(50);
        }
      }
    } finally {
      db.close();
    }
  }

  /** One snapshot across statements, with writers committing in between. */
  private async readTransaction(db: Client): Promise<void> {
    const tx = await db.transaction("read");
    try {
      const first = (await tx.execute("SELECT id, balance FROM accounts ORDER BY id")).rows.map((row) => Number(row["balance"]));
      await sleep(15);
      const low = (await tx.execute({ sql: "SELECT coalesce(sum(balance), 0) AS s FROM accounts WHERE id < ?", args: [ACCOUNTS / 2] })).rows[0]!;
      await sleep(15);
      const high = (await tx.execute({ sql: "SELECT coalesce(sum(balance), 0) AS s FROM accounts WHERE id >= ?", args: [ACCOUNTS / 2] })).rows[0]!;
      const again = (await tx.execute("SELECT id, balance FROM accounts ORDER BY id")).rows.map((row) => Number(row["balance"]));
      await tx.commit();
      this.reads.readTx++;
      const sum = first.reduce((a, b) => a + b, 0);
      if (first.length !== ACCOUNTS || sum !== TOTAL) this.violation(`read tx: ${first.length} accounts, total ${sum}`);
      if (first.some((b) => b < 0)) this.violation(`read tx: negative balance ${Math.min(...first)}`);
      if (Number(low["s"]) + Number(high["s"]) !== TOTAL) this.violation(`read tx: halves ${low["s"]} + ${high["s"]}`);
      if (JSON.stringify(first) !== JSON.stringify(again)) this.violation("read tx: the balances changed within one snapshot");
    } finally {
      tx.close();
    }
  }

  private async readBatch(db: Client): Promise<void> {
    const [sum, min] = await db.batch(["SELECT sum(balance) AS s, count(*) AS n FROM accounts", "SELECT min(balance) AS m FROM accounts"], "read");
    this.reads.readBatch++;
    if (Number(sum!.rows[0]!["s"]) !== TOTAL || Number(sum!.rows[0]!["n"]) !== ACCOUNTS) this.violation(`read batch: total ${sum!.rows[0]!["s"]}`);
    if (Number(min!.rows[0]!["m"]) < 0) this.violation(`read batch: negative balance ${min!.rows[0]!["m"]}`);
  }

  private async plainRead(db: Client): Promise<void> {
    const row = (await db.execute("SELECT sum(balance) AS s, min(balance) AS m FROM accounts")).rows[0]!;
    this.reads.plain++;
    if (Number(row["s"]) !== TOTAL) this.violation(`plain read: total ${row["s"]}`);
    if (Number(row["m"]) < 0) this.violation(`plain read: negative balance ${row["m"]}`);
  }

  /**
   * The balances equal the initial ones plus every acknowledged transfer plus some subset of the
   * unknown ones (each all or nothing). Failed and refused transfers moved nothing.
   */
  async verifyBalances(db: Client): Promise<number> {
    const rows = (await db.execute("SELECT id, balance FROM accounts ORDER BY id")).rows;
    const actual = rows.map((r) => Number(r["balance"]));
    const base = Array.from({ length: ACCOUNTS }, () => INITIAL);
    for (const t of this.transfers) {
      if (t.outcome !== "acked") continue;
      base[t.from]! -= t.amount;
      base[t.to]! += t.amount;
    }
    const unknown = this.transfers.filter((t) => t.outcome === "unknown");
    assert.ok(unknown.length <= 16, `${unknown.length} unknown transfers: too many to check exactly`);
    for (let mask = 0; mask < 2 ** unknown.length; mask++) {
      const expected = [...base];
      unknown.forEach((t, i) => {
        if ((mask & (1 << i)) === 0) return;
        expected[t.from]! -= t.amount;
        expected[t.to]! += t.amount;
      });
      if (expected.every((v, i) => v === actual[i])) return mask;
    }
    assert.fail(`balances match no combination of the ${unknown.length} unknown transfers on top of ${this.count("acked")} acknowledged ones: ` +
      `${JSON.stringify(actual)} vs ${JSON.stringify(base)}`);
  }

  /** Unknown transfers whose effect is now known become acked or failed (the next phase starts clean). */
  settleUnknown(mask: number): void {
    this.transfers.filter((t) => t.outcome === "unknown").forEach((t, i) => {
      t.outcome = (mask & (1 << i)) !== 0 ? "acked" : "failed";
    });
  }
}

let cluster: ProcessCluster | undefined;
after(() => cluster?.destroy());

test("bank: concurrent transfers, every snapshot holds the total; storage node and writer killed -9 under it", { timeout: 180_000 }, async (t) => {
  const seed = seedFromEnv();
  const rng = new Rng(seed);
  // Padding spreads the accounts over several pages and, with small PGs, several protection groups.
  cluster = await ProcessCluster.start({ pgPages: 4, cacheMb: 16 });
  const c = cluster;
  const db = boundedClient(c.writerUrl);
  t.after(() => db.close());
  await db.batch([
    "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, pad BLOB NOT NULL)",
    ...Array.from({ length: ACCOUNTS }, (_, i) => ({ sql: "INSERT INTO accounts VALUES (?, ?, zeroblob(700))", args: [i, INITIAL] })),
  ], "write");
  const bank = new Bank(c.writerUrl, seed);
  const victim = c.nodes[rng.int(c.nodes.length)]!;
  t.diagnostic(`seed ${seed}: ${ACCOUNTS} accounts, ${WRITERS} writers, ${READERS} readers; storage node ${victim.name} (AZ ${victim.az}) dies in phase 1`);

  // Phase 1: a storage node dies mid-way and comes back.
  bank.start(1);
  await sleep(3000);
  await c.kill(victim);
  await sleep(3000);
  await c.startNode(victim.name);
  await sleep(1500);
  await bank.stop();
  t.diagnostic(`phase 1: ${bank.summary()}`);
  assert.deepEqual(bank.violations, []);
  assert.ok(bank.count("acked") >= 20, "transfers went through");
  bank.settleUnknown(await bank.verifyBalances(db));
  await assertHealthy(c, db);

  // Phase 2: the writer dies mid-load; the load goes on against its replacement.
  bank.start(2);
  await sleep(3000);
  await c.kill(c.writer);
  const restartMs = await c.startWriter();
  await sleep(3000);
  await bank.stop();
  t.diagnostic(`phase 2 (writer back in ${restartMs.toFixed(0)} ms): ${bank.summary()}`);
  assert.deepEqual(bank.violations, []);
  const mask = await bank.verifyBalances(db);
  t.diagnostic(`${bank.count("unknown")} transfers in flight when the writer died; applied: ${mask.toString(2)}`);
  bank.settleUnknown(mask);
  const total = Number((await db.execute("SELECT sum(balance) AS s, min(balance) AS m FROM accounts")).rows[0]!["s"]);
  assert.equal(total, TOTAL);
  assert.ok(bank.reads.readTx >= 10 && bank.reads.plain >= 10, "snapshots were checked");
  await assertHealthy(c, db);
});
