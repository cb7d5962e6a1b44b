/**
 * Primary-key point reads: each operation is `SELECT k, v FROM kv WHERE id = ?` for a uniformly random
 * preloaded id. The table is small enough to stay in every system's cache, so this measures the warm
 * read path (DESIGN.md target: warm point reads/s at 32 clients ≥ PostgreSQL).
 */
import { ensureKv, type ClientContext, type ClientOp, type Workload } from "./workload.js";

export const readWorkload: Workload = {
  name: "read",
  title: "Primary-key point reads",
  description: "One autocommit `SELECT k, v FROM kv WHERE id = ?` for a uniformly random preloaded id per operation.",
  kind: "timed",
  writes: false,
  prepare: (conn, params, progress) => ensureKv(conn, params, progress),
  clientOp(ctx: ClientContext): ClientOp {
    return {
      async run() {
        const id = 1 + Math.floor(ctx.random() * ctx.params.preloadRows);
        const rows = await ctx.conn.execute("SELECT k, v FROM kv WHERE id = ?", [id]);
        if (rows.length !== 1) throw new Error(`point read of kv id ${id} returned ${rows.length} rows`);
        return { commits: 0, retries: 0 };
      },
      maxSeq: () => -1,
    };
  },
};
