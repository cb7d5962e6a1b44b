/**
 * Micro-benchmark of the durable-point tracker (not a test: `node --test` imports it and it does
 * nothing unless BOREALIS_BENCH=1).
 *
 *     npx tsc -p . --outDir .out/quorum && BOREALIS_BENCH=1 node .out/quorum/test/quorum/durable-point.bench.js
 *
 * The writer's worst case: every record acknowledged individually by all six segments, acks of
 * different segments interleaved and a little out of order, records spread over many PGs.
 */
import { Lsn, NodeId, PgId } from "../../src/core/types.js";
import { CommitWaiters } from "../../src/quorum/commit-waiters.js";
import { DurablePointTracker } from "../../src/quorum/durable-point.js";
import { simpleQuorumSet } from "../../src/quorum/quorum-set.js";

function run(records: number, pgCount: number, window: number): void {
  const sets = Array.from({ length: pgCount }, (_, p) => simpleQuorumSet(Array.from({ length: 6 }, (_, i) => NodeId(`pg${p}-s${i}`))));
  const t = new DurablePointTracker({ vdl: Lsn(0), lal: 10_000_000, pgs: sets.map((quorumSet, p) => ({ pgId: PgId(p), quorumSet, lastLsn: Lsn(0) })) });
  const waiters = new CommitWaiters<number>();
  const pgOf = new Int32Array(records + 1);
  let acks = 0;
  let released = 0;
  const started = process.hrtime.bigint();
  for (let lsn = 1; lsn <= records; lsn++) {
    const pg = (lsn * 2654435761) % pgCount;
    pgOf[lsn] = pg;
    const isCpl = lsn % 3 === 0;
    t.recordSent(PgId(pg), Lsn(lsn), isCpl);
    if (isCpl) waiters.add(Lsn(lsn), lsn);
    // Acks arrive `window` records behind the sends; segment i lags i records more than segment 0.
    const acked = lsn - window;
    for (let i = 0; i < 6; i++) {
      const a = acked - i;
      if (a < 1) continue;
      acks++;
      if (t.onAck(PgId(pgOf[a]!), sets[pgOf[a]!]!.members[i]!, Lsn(a))) released += waiters.onVdlAdvanced(t.vdl).length;
    }
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(
    `${records} records over ${pgCount} PGs, ${acks} acks, window ${window}: ${seconds.toFixed(3)} s — ` +
    `${Math.round(records / seconds).toLocaleString("en")} records/s, ${Math.round(acks / seconds).toLocaleString("en")} acks/s; ` +
    `VDL ${t.vdl}, ${released} commits released, ${t.outstandingRecords} outstanding`,
  );
}

if (process.env["BOREALIS_BENCH"] === "1") {
  run(200_000, 16, 64); // warm-up
  run(2_000_000, 1, 64);
  run(2_000_000, 16, 64);
  run(2_000_000, 1024, 4096);
}
