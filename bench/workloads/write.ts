/**
 * Single-row durable write transactions: each operation is one autocommit
 * `INSERT INTO kv (id, k, v) VALUES (?, ?, ?)` of a fresh row, acknowledged only once durable
 * (PostgreSQL: fsync + synchronous_commit; SQLite: WAL + synchronous=FULL; Borealis: VDL ≥ commit LSN).
 * Inserts rather than updates, so clients never wait on each other's row locks: what is measured is
 * the commit path. Ids are dense and disjoint per client (`idBase + seq × clients + client`).
 */
import { ensureKv, rowValue, type ClientContext, type ClientOp, type Workload } from "./workload.js";

export const writeWorkload: Workload = {
  name: "write",
  title: "Single-row durable writes",
  description: "One autocommit `INSERT INTO kv (id, k, v) VALUES (?, ?, ?)` of a new row (100-byte value) per operation; each is a durable commit.",
  kind: "timed",
  writes: true,
  prepare: (conn, params, progress) => ensureKv(conn, params, progress),
  clientOp(ctx: ClientContext): ClientOp {
    let seq = -1;
    return {
      async run() {
        seq++;
        const id = ctx.idBase + seq * ctx.totalClients + ctx.clientIndex;
        await ctx.conn.execute("INSERT INTO kv (id, k, v) VALUES (?, ?, ?)", [id, id % 1000, rowValue(id)]);
        return { commits: 1, retries: 0 };
      },
      maxSeq: () => seq,
    };
  },
};
