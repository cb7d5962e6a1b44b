/**
 * Issue 2's first required cluster test: six storage nodes as real processes on loopback, the
 * production volume client (recovery → VolumeWriter) writing synthetic mini-transactions across three
 * PGs, storage nodes killed with SIGKILL mid-stream.
 *
 * What it proves (DESIGN.md invariants 2, 3, 5, 8, 12):
 *   - both nodes of one AZ down (seeded AZ): VCL and VDL keep advancing, commits keep being acknowledged;
 *   - any two nodes down (seeded): the same;
 *   - a third node down: VCL and VDL stop and no commit is acknowledged for 2 s while commits are
 *     outstanding — no durability is claimed that does not exist;
 *   - the nodes restarted: the stream resumes, every held-up commit is acknowledged, every segment
 *     catches up;
 *   - a new writer recovering from scratch (a writer restart) finds every acknowledged commit durable,
 *     finds each PG's last record where the model has it, and reads every page at several read points
 *     exactly as the model has it; and every segment, asked directly, that is complete at a read point
 *     serves every page of its PG there byte for byte as the model.
 *
 * Seeds are printed; replay a run with BOREALIS_SEED=<seed>.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Lsn } from "../../src/core/types.js";
import type { StorageProcess } from "../../src/testing/process-cluster.js";
import { Prng, SyntheticVolume, seedFromEnv } from "../../src/testing/synthetic-volume.js";
import {
  CommitStream, startCluster, PG_COUNT, PG_PAGES, checkPagesThroughWriter, checkSegmentsDirectly, createVolume, describe, openWriter,
  pickReadPoints, sleep, waitFor, waitFullyReplicated,
} from "./helpers.js";

/** Commits that must be acknowledged in each phase that claims progress. */
const PROGRESS = 100;
/** Time a phase may take to show that progress (2 shared cores, other test runs beside us). */
const PHASE_MS = 45_000;
/** How long VDL must stand still with three nodes down. */
const STALL_MS = 2000;

test("kill -9 storage nodes mid-stream: 2 down keeps committing, 3 down stops, restart loses nothing", { timeout: 180_000 }, async (t) => {
  const seed = seedFromEnv();
  t.diagnostic(`seed ${seed} (replay with BOREALIS_SEED=${seed})`);
  console.log(`[kill-nodes] seed ${seed}`);
  const rng = new Prng(seed ^ 0x9e3779b9);
  const started = performance.now();

  const cluster = await startCluster(t);
  const volumeId = "kill-nodes";
  await createVolume(cluster, volumeId);
  // A small outbox: the writer keeps only about 64 KiB of records for lagging segments, so restarted
  // nodes catch up by copying from a peer (readRecords → writeBatch), not from the writer's memory.
  const w1 = await openWriter(cluster, volumeId, "writer-1", { maxOutboxBytes: 64 * 1024 });
  let w1Open = true;
  t.after(() => { if (w1Open) w1.close(); });
  const model = new SyntheticVolume({ seed, pgPages: PG_PAGES, pgCount: PG_COUNT, pageSize: w1.vw.pageSize }, w1.recovered.lsnState);
  const stream = new CommitStream(w1.vw, model, 16);
  const vw = w1.vw;
  const readPoints: Lsn[] = [];
  const note = (what: string) => t.diagnostic(`${((performance.now() - started) / 1000).toFixed(1)} s ${what}: acked ${stream.acked}/${stream.submitted}, ${describe(vw)}`);

  /** Waits for PROGRESS more acknowledged commits and a higher VCL and VDL than now. */
  const expectProgress = async (why: string) => {
    const acked0 = stream.acked;
    const vdl0 = vw.vdl();
    const vcl0 = vw.status().vcl;
    await waitFor(() => stream.acked >= acked0 + PROGRESS && vw.vdl() > vdl0 && vw.status().vcl > vcl0, PHASE_MS,
      () => `${PROGRESS} commits acknowledged and VCL/VDL advancing ${why} (acked ${stream.acked - acked0}; ${describe(vw)})`);
    assert.deepEqual(stream.failures, []);
    readPoints.push(stream.maxAcked);
  };

  stream.start();
  await expectProgress("with all six nodes up");
  note("all up");

  // Round 1: a whole AZ (both its nodes) down.
  const az = ["a", "b", "c"][rng.int(3)]!;
  const azNodes = cluster.nodes.filter((n) => n.az === az);
  t.diagnostic(`round 1: kill both nodes of AZ ${az}: ${azNodes.map((n) => n.name).join(", ")}`);
  await Promise.all(azNodes.map((n) => cluster.kill(n)));
  await expectProgress(`with AZ ${az} down`);
  note(`AZ ${az} down`);
  await Promise.all(azNodes.map((n) => cluster.startNode(n.name)));
  await expectProgress(`after AZ ${az} restarted`);
  // Let the restarted segments catch up before the next round, so each round starts from six copies.
  await stream.stop();
  await waitFor(() => stream.outstanding === 0, PHASE_MS, () => `outstanding commits to drain (${describe(vw)})`);
  await waitFullyReplicated(vw, PHASE_MS);
  note(`AZ ${az} back and caught up`);
  stream.start();

  // Round 2: any two nodes (seeded), then a third.
  const order = shuffle(cluster.nodes, rng);
  const [x, y, z] = [order[0]!, order[1]!, order[2]!];
  t.diagnostic(`round 2: kill ${x.name} (${x.az}) and ${y.name} (${y.az}), then ${z.name} (${z.az})`);
  await Promise.all([cluster.kill(x), cluster.kill(y)]);
  await expectProgress(`with ${x.name} and ${y.name} down`);
  note(`${x.name}, ${y.name} down`);

  await cluster.kill(z);
  // Acks already on the wire when the third node died may still land: wait until VDL settles, then
  // require it to stand still for STALL_MS while commits are outstanding.
  let last = vw.vdl();
  let stableSince = performance.now();
  await waitFor(() => {
    if (vw.vdl() !== last) { last = vw.vdl(); stableSince = performance.now(); }
    return performance.now() - stableSince >= 300;
  }, 10_000, () => `VDL to settle after the third kill (${describe(vw)})`);
  const stalled = { vdl: vw.vdl(), vcl: vw.status().vcl, acked: stream.acked };
  await sleep(STALL_MS);
  note(`${x.name}, ${y.name}, ${z.name} down for ${STALL_MS} ms`);
  assert.ok(stream.outstanding > 0, "commits are outstanding while three nodes are down");
  assert.equal(vw.vdl(), stalled.vdl, "VDL does not advance with three of six segments down");
  assert.equal(vw.status().vcl, stalled.vcl, "VCL does not advance with three of six segments down");
  assert.equal(stream.acked, stalled.acked, "no commit is acknowledged with three of six segments down");
  readPoints.push(stalled.vdl);

  await Promise.all([x, y, z].map((n) => cluster.startNode(n.name)));
  await expectProgress(`after ${x.name}, ${y.name}, ${z.name} restarted`);
  await expectProgress("once more, after the restart");
  await stream.stop();
  await waitFor(() => stream.outstanding === 0, PHASE_MS, () => `outstanding commits to drain (${describe(vw)})`);
  await waitFullyReplicated(vw, PHASE_MS);
  note("stream stopped, all acknowledged, every segment complete");
  assert.deepEqual(stream.failures, []);
  assert.equal(stream.acked, stream.submitted, "every commit submitted was acknowledged");
  assert.equal(stream.maxAcked, model.lastCommitLsn);
  const finalAcked = stream.maxAcked;

  // A writer restart: close this one and recover from scratch with a new one.
  w1.close();
  w1Open = false;
  const w2 = await openWriter(cluster, volumeId, "writer-2");
  t.after(() => w2.close());
  const rec = w2.recovered.report;
  t.diagnostic(`recovery: epoch ${rec.epoch} VDL ${rec.vdl} VCL ${rec.vcl} examined ${rec.recordsExamined} records, caught up ${rec.segmentsCaughtUp} segments, ${rec.ms} ms`);
  assert.ok(rec.vdl >= finalAcked, `recovered VDL ${rec.vdl} covers every acknowledged commit (${finalAcked})`);
  assert.equal(rec.vdl, model.lastCommitLsn, "nothing was annulled: every commit was acknowledged");
  model.resume(w2.recovered.lsnState); // asserts each PG's last record matches the model

  const points = pickReadPoints(model, readPoints, Lsn(0), finalAcked, 3, () => rng.float());
  t.diagnostic(`read points: ${points.join(", ")}`);
  const reads = await checkPagesThroughWriter(w2.vw, model, points);
  // Every segment is reachable by the new writer once its shipper has adopted it.
  await waitFor(() => w2.vw.status().pgs.every((pg) => pg.segments.every((s) => s.state === "ready")), PHASE_MS,
    () => `the new writer's segments to be ready (${describe(w2.vw)})`);
  const direct = await checkSegmentsDirectly(w2.env, cluster, w2.recovered.volume, w2.recovered.epoch, model, points);
  for (const pg of w2.recovered.volume.pgs) {
    for (const rp of points) {
      // Every segment was complete before writer 1 closed, so all six are complete at every read point.
      assert.equal(direct.complete.get(`${pg.pgId}@${rp}`) ?? 0, 6, `PG ${pg.pgId}: segments complete at read point ${rp}`);
    }
  }
  t.diagnostic(`${stream.acked} commits acknowledged (${model.cpls.length} in the model); ${reads} page reads through the writer, ${direct.pageReads} direct; ${((performance.now() - started) / 1000).toFixed(1)} s`);
});

function shuffle(nodes: readonly StorageProcess[], rng: Prng): StorageProcess[] {
  const a = [...nodes];
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}
