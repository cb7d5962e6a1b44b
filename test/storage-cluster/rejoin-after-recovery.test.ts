/**
 * Two storage nodes are down while a new writer recovers the volume; they come back afterwards holding
 * records the recovery annulled (the old writer's last batches reached only them). They must adopt
 * the new epoch, drop those records (the recovery's annulment, ARCHITECTURE D7, invariant 8), catch
 * up and take writes again — otherwise the PG runs on four copies for good and the next two failures
 * stop it (invariant 12).
 *
 * Regression for the shipper's probe, which trusted `getSegmentState` (answered at any newer epoch)
 * and never sent `annul`: such segments were refused every write forever. Unit test beside the code:
 * test/compute/pg-shipper.test.ts.
 *
 * Seeds are printed; replay a run with BOREALIS_SEED=<seed>.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Lsn, type Epochs, type PgId } from "../../src/core/types.js";
import { Prng, SyntheticVolume, seedFromEnv } from "../../src/testing/synthetic-volume.js";
import { encodeRecord, type EncodedRecord } from "../../src/wire/record.js";
import {
  CommitStream, startCluster, PG_COUNT, PG_PAGES, checkPagesThroughWriter, checkSegmentsDirectly, createVolume, describe, directClient, openWriter,
  pickReadPoints, waitFor, waitFullyReplicated, type TestWriter,
} from "./helpers.js";

const PHASE_MS = 45_000;

test("nodes down during a writer recovery rejoin: annul what it annulled, catch up, take writes", { timeout: 180_000 }, async (t) => {
  const seed = seedFromEnv();
  t.diagnostic(`seed ${seed} (replay with BOREALIS_SEED=${seed})`);
  console.log(`[rejoin-after-recovery] seed ${seed}`);
  const rng = new Prng(seed ^ 0xc2b2ae35);
  const cluster = await startCluster(t);
  const volumeId = "rejoin";
  await createVolume(cluster, volumeId);
  const writers: TestWriter[] = [];
  t.after(() => { for (const w of writers) w.close(); });

  // Writer 1 commits for a while, then stops (everything it submitted is acknowledged).
  const w1 = await openWriter(cluster, volumeId, "writer-1");
  writers.push(w1);
  const model = new SyntheticVolume({ seed, pgPages: PG_PAGES, pgCount: PG_COUNT, pageSize: w1.vw.pageSize }, w1.recovered.lsnState);
  const s1 = new CommitStream(w1.vw, model, 16);
  s1.start();
  await waitFor(() => s1.acked >= 150, PHASE_MS, () => `150 commits acknowledged (${describe(w1.vw)})`);
  await s1.stop();
  await waitFor(() => s1.outstanding === 0, PHASE_MS, () => `writer 1 to drain (${describe(w1.vw)})`);
  await waitFullyReplicated(w1.vw, PHASE_MS);
  w1.close();
  const acked = s1.maxAcked;

  // Its last MTRs reached only two segments of each PG (seeded nodes), and then those nodes die:
  // records no recovery can see, which it therefore annuls.
  const first = rng.int(6);
  const second = (first + 1 + rng.int(5)) % 6;
  const [a, b] = [cluster.nodes[first]!, cluster.nodes[second]!];
  const volume = w1.recovered.volume;
  const lost = [model.nextMtr(3), model.nextMtr(3), model.nextMtr(3)];
  for (const node of [a, b]) {
    const client = directClient(w1.env, node);
    try {
      for (const pg of volume.pgs) {
        const records: EncodedRecord[] = lost.flatMap((m) => m.records).filter((r) => r.pgId === pg.pgId)
          .map((r) => encodeRecord(r.record, { volumeId: volume.volumeId, pgId: r.pgId as PgId }));
        if (records.length === 0) continue;
        const epochs: Epochs = { volumeEpoch: w1.recovered.epoch, membershipEpoch: pg.membershipEpoch };
        const scl = await client.writeBatch({ key: { volumeId: volume.volumeId, pgId: pg.pgId }, epochs, writerVdl: acked, records });
        assert.equal(scl, records[records.length - 1]!.lsn, `${node.name} PG ${pg.pgId} holds the lost records`);
      }
    } finally {
      client.close();
    }
  }
  t.diagnostic(`the last ${lost.length} MTRs (through LSN ${model.lastCommitLsn}) reached only ${a.name} and ${b.name}; killing them`);
  await Promise.all([cluster.kill(a), cluster.kill(b)]);

  // Writer 2 recovers from the four others: the lost MTRs are not durable and are annulled.
  const w2 = await openWriter(cluster, volumeId, "writer-2");
  writers.push(w2);
  const rec = w2.recovered.report;
  t.diagnostic(`recovery with ${a.name}, ${b.name} down: epoch ${rec.epoch} VDL ${rec.vdl} (acknowledged ${acked})`);
  assert.equal(rec.vdl, acked, "the recovered VDL is the last acknowledged commit; the lost MTRs are annulled");
  assert.equal(model.resume(w2.recovered.lsnState), lost.length);

  const s2 = new CommitStream(w2.vw, model, 16);
  s2.start();
  await waitFor(() => s2.acked >= 100, PHASE_MS, () => `100 commits acknowledged with two nodes down (${describe(w2.vw)})`);
  await Promise.all([a, b].map((n) => cluster.startNode(n.name)));
  await waitFor(() => s2.acked >= 200, PHASE_MS, () => `200 commits acknowledged after the restart (${describe(w2.vw)})`);
  await s2.stop();
  await waitFor(() => s2.outstanding === 0, PHASE_MS, () => `writer 2 to drain (${describe(w2.vw)})`);
  assert.deepEqual(s2.failures, []);
  // The point of the test: the two nodes adopt epoch 2's annulment and come back as full copies.
  await waitFullyReplicated(w2.vw, PHASE_MS);
  t.diagnostic(`all six segments complete again: ${describe(w2.vw)}`);

  // Every segment, the rejoined ones included, serves every page as the model has it — which it could
  // not if it had kept a lost record: each one changed a page, and the read points lie above them.
  const points = pickReadPoints(model, [], Lsn(w2.recovered.lsnState.nextLsn - 1), s2.maxAcked, 4, () => rng.float());
  await checkPagesThroughWriter(w2.vw, model, points);
  const direct = await checkSegmentsDirectly(w2.env, cluster, w2.recovered.volume, w2.recovered.epoch, model, points);
  for (const pg of w2.recovered.volume.pgs) {
    for (const rp of points) assert.equal(direct.complete.get(`${pg.pgId}@${rp}`) ?? 0, 6, `PG ${pg.pgId}: segments complete at read point ${rp}`);
  }
  t.diagnostic(`read points ${points.join(", ")}: ${direct.pageReads} direct page reads, all as the model`);
});
