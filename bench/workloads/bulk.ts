/**
 * The bulk load: `bulkRows` rows into an empty `bulk` table (kv's shape), as multi-row INSERTs of
 * `batchRows` rows, `batchesPerTxn` statements per transaction — how an application without a COPY
 * path loads data through the client library. One client; an operation is one transaction, and the
 * figure that matters is rows/s over the whole load. Fixed work, not fixed time: the run ends when the
 * last row is committed.
 */
import { KV_DDL, multiRowInsert, kvArgs, recreate, type ClientContext, type ClientOp, type Workload } from "./workload.js";

export const bulkWorkload: Workload = {
  name: "bulk",
  title: "Bulk load",
  description: "Rows inserted into an empty table in multi-row INSERT statements, several per transaction, by one client.",
  kind: "fixed",
  writes: true,
  async prepare() {},
  async beforeRun(conn) {
    await recreate(conn, "bulk", KV_DDL.replace("TABLE kv", "TABLE bulk"));
  },
  async check(conn, params) {
    const rows = await conn.execute("SELECT count(*), max(id) FROM bulk");
    const n = Number(rows[0]?.[0]);
    if (n !== params.bulkRows) throw new Error(`bulk load: table holds ${n} rows, expected ${params.bulkRows}`);
    return `${n.toLocaleString("en-US")} rows present after the last load`;
  },
  clientOp(ctx: ClientContext): ClientOp {
    // Clients split the id range; the bench runs the bulk load with one.
    const share = Math.ceil(ctx.params.bulkRows / ctx.totalClients);
    const first = 1 + ctx.clientIndex * share;
    const end = Math.min(ctx.params.bulkRows + 1, first + share);
    let next = first;
    return {
      async run() {
        if (next >= end) return { commits: 0, retries: 0, rows: 0, done: true };
        const start = next;
        let pos = next;
        await ctx.conn.transaction(async (tx) => {
          for (let b = 0; b < ctx.params.batchesPerTxn && pos < end; b++) {
            const n = Math.min(ctx.params.batchRows, end - pos);
            await tx.execute(multiRowInsert("bulk", ["id", "k", "v"], n), kvArgs(pos, n));
            pos += n;
          }
        });
        // Only a committed transaction moves on; a failed one is retried by the next call.
        next = pos;
        return { commits: 1, retries: 0, rows: next - start, done: next >= end };
      },
      maxSeq: () => -1,
    };
  },
};
