/**
 * The 90/10 read/write mix (YCSB workload B's shape with more writes): 90 % point reads as in
 * `read.ts`, 10 % single-row updates `UPDATE kv SET k = k + 1, v = ? WHERE id = ?` of a random
 * preloaded row, each a durable autocommit transaction. Updates (not inserts) so reads and writes
 * touch the same rows and pages: a reader may need the version a writer just made.
 */
import { ensureKv, rowValue, type ClientContext, type ClientOp, type Workload } from "./workload.js";

export const mixWorkload: Workload = {
  name: "mix",
  title: "90/10 read/write mix",
  description: "90 % `SELECT k, v FROM kv WHERE id = ?`, 10 % `UPDATE kv SET k = k + 1, v = ? WHERE id = ?` (durable), uniformly random preloaded ids.",
  kind: "timed",
  writes: true,
  prepare: (conn, params, progress) => ensureKv(conn, params, progress),
  clientOp(ctx: ClientContext): ClientOp {
    let n = 0;
    return {
      async run() {
        n++;
        const id = 1 + Math.floor(ctx.random() * ctx.params.preloadRows);
        if (ctx.random() * 100 < ctx.params.mixReadPercent) {
          const rows = await ctx.conn.execute("SELECT k, v FROM kv WHERE id = ?", [id]);
          if (rows.length !== 1) throw new Error(`point read of kv id ${id} returned ${rows.length} rows`);
          return { commits: 0, retries: 0 };
        }
        await ctx.conn.execute("UPDATE kv SET k = k + 1, v = ? WHERE id = ?", [rowValue(id + n), id]);
        return { commits: 1, retries: 0 };
      },
      maxSeq: () => -1,
    };
  },
};
