import { test } from "node:test";
import assert from "node:assert/strict";
import { Az, Epoch, NodeId, VolumeId } from "../../src/core/types.js";
import { isBorealisError, type ErrorCode } from "../../src/core/errors.js";
import { ControlPlane } from "../../src/control-plane/control-plane.js";
import { EmbeddedKv } from "../../src/control-plane/embedded-kv.js";
import type { ControlPlaneApi } from "../../src/control-plane/api.js";
import { manualClock, quietEnv, tempDir, type ManualClock } from "./helpers.js";

const isCode = (code: ErrorCode) => (e: unknown) => isBorealisError(e, code);

/** Six nodes n1..n6 in AZs a,a,b,b,c,c, like `borealis up`. */
async function registerSix(cp: ControlPlaneApi, prefix = "n"): Promise<void> {
  const azs = ["a", "a", "b", "b", "c", "c"];
  for (let i = 0; i < 6; i++) {
    await cp.heartbeat({ nodeId: NodeId(`${prefix}${i + 1}`), az: Az(azs[i]!), address: `127.0.0.1:${7101 + i}` });
  }
}

async function open(t: { after: (fn: () => Promise<void>) => void }, clock: ManualClock = manualClock()) {
  const { dir, cleanup } = await tempDir();
  const env = quietEnv({ clock });
  const kv = await EmbeddedKv.open(env, dir);
  t.after(async () => { await kv.close(); await cleanup(); });
  return { dir, env, kv, clock, cp: new ControlPlane(env, kv) };
}

test("heartbeats register nodes; liveness follows the timeout on the monotonic clock", async (t) => {
  const { cp, clock } = await open(t);
  const r = await cp.heartbeat({ nodeId: NodeId("n1"), az: Az("a"), address: "127.0.0.1:7101" });
  assert.equal(r.heartbeatTimeoutMs, 3000);
  assert.equal(r.node.alive, true);
  clock.advance(3000);
  assert.equal((await cp.listNodes())[0]!.alive, true, "alive at exactly the timeout");
  clock.advance(1);
  const [n1] = await cp.listNodes();
  assert.equal(n1!.alive, false);
  assert.equal(n1!.lastHeartbeatAgeMs, 3001);
  await cp.heartbeat({ nodeId: NodeId("n1"), az: Az("a"), address: "127.0.0.1:7201" });
  const [again] = await cp.listNodes();
  assert.equal(again!.alive, true);
  assert.equal(again!.address, "127.0.0.1:7201", "a node may move");
  await assert.rejects(cp.heartbeat({ nodeId: NodeId("n1"), az: Az("b"), address: "127.0.0.1:7201" }), (e) =>
    isBorealisError(e, "INVALID_ARGUMENT") && /registered in AZ a/.test(e.message));
  await assert.rejects(cp.heartbeat({ nodeId: NodeId("bad id!"), az: Az("a"), address: "127.0.0.1:1" }), isCode("INVALID_ARGUMENT"));
  await assert.rejects(cp.heartbeat({ nodeId: NodeId("n9"), az: Az("a"), address: "nohost" }), isCode("INVALID_ARGUMENT"));
});

test("createVolume places each PG on 6 live nodes, 2 per AZ, with the documented geometry", async (t) => {
  const { cp } = await open(t);
  await registerSix(cp);
  const v = await cp.createVolume({ volumeId: VolumeId("db1"), pgPages: 16, pgCount: 3 });
  assert.equal(v.pageSize, 4096);
  assert.equal(v.pgPages, 16);
  assert.equal(v.volumeEpoch, 1);
  assert.equal(v.geometryEpoch, 1);
  assert.equal(v.writer, null);
  assert.equal(v.pgs.length, 3);
  v.pgs.forEach((pg, g) => {
    assert.equal(pg.pgId, g);
    assert.deepEqual(pg.geometry, { volumeId: "db1", pgId: g, firstPage: 1 + g * 16, pageCount: 16, pageSize: 4096 });
    assert.equal(pg.membershipEpoch, 1);
    assert.deepEqual(pg.segments.map((s) => s.nodeId).sort(), ["n1", "n2", "n3", "n4", "n5", "n6"]);
    assert.ok(pg.segments.every((s) => s.address !== null && s.address.startsWith("127.0.0.1:")));
  });
  assert.deepEqual(await cp.getVolume(VolumeId("db1")), v);
  assert.deepEqual((await cp.listVolumes()).map((x) => x.volumeId), ["db1"]);
  assert.ok((await cp.listNodes()).every((n) => n.segmentCount === 3));

  await assert.rejects(cp.createVolume({ volumeId: VolumeId("db1"), pgPages: 16 }), (e) =>
    isBorealisError(e, "CONFLICT") && /already exists/.test(e.message));
  await assert.rejects(cp.getVolume(VolumeId("nope")), isCode("VOLUME_NOT_FOUND"));
  await assert.rejects(cp.createVolume({ volumeId: VolumeId("x"), pageSize: 1000 }), isCode("INVALID_ARGUMENT"));
  await assert.rejects(cp.createVolume({ volumeId: VolumeId("x"), pgCount: 0 }), isCode("INVALID_ARGUMENT"));
});

test("placement spreads load over more nodes and skips dead ones", async (t) => {
  const { cp, clock } = await open(t);
  await registerSix(cp, "n");
  clock.advance(2000);
  await registerSix(cp, "m"); // m1..m6 fresh; n1..n6 still alive (2 s old)
  await cp.createVolume({ volumeId: VolumeId("v1"), pgPages: 16, pgCount: 2 });
  const loads = new Map((await cp.listNodes()).map((n) => [n.nodeId, n.segmentCount]));
  assert.ok([...loads.values()].every((c) => c === 1), `two PGs over twelve nodes: one segment each, got ${JSON.stringify([...loads])}`);

  clock.advance(1500); // n* are now 3.5 s old: dead; m* 1.5 s: alive
  const v2 = await cp.createVolume({ volumeId: VolumeId("v2"), pgPages: 16 });
  assert.ok(v2.pgs[0]!.segments.every((s) => s.nodeId.startsWith("m")));

  clock.advance(5000); // everyone dead
  await assert.rejects(cp.createVolume({ volumeId: VolumeId("v3"), pgPages: 16 }), (e) =>
    isBorealisError(e, "PLACEMENT_IMPOSSIBLE") && /2 live storage nodes in each of 3 AZs/.test(e.message));
  await assert.rejects(cp.addProtectionGroup(VolumeId("v1")), isCode("PLACEMENT_IMPOSSIBLE"));
});

test("addProtectionGroup grows the volume and bumps the geometry epoch", async (t) => {
  const { cp } = await open(t);
  await registerSix(cp);
  await cp.createVolume({ volumeId: VolumeId("v"), pgPages: 16, pageSize: 1024 });
  const grown = await cp.addProtectionGroup(VolumeId("v"));
  assert.equal(grown.pgs.length, 2);
  assert.equal(grown.geometryEpoch, 2);
  assert.deepEqual(grown.pgs[1]!.geometry, { volumeId: "v", pgId: 1, firstPage: 17, pageCount: 16, pageSize: 1024 });
  assert.equal(grown.volumeEpoch, 1, "growth does not fence the writer");
  await assert.rejects(cp.addProtectionGroup(VolumeId("nope")), isCode("VOLUME_NOT_FOUND"));
});

// Regression (found by test/e2e/durability.test.ts): growth placed only on live nodes, so in a
// six-node cluster one dead node made every new PG impossible and the writer's commits stalled behind
// the new PG's records, although each existing PG still had a write quorum.
test("addProtectionGroup still grows with an node or a whole AZ down, as long as 4 of the 6 are live", async (t) => {
  const { cp, clock } = await open(t);
  await registerSix(cp);
  await cp.createVolume({ volumeId: VolumeId("v"), pgPages: 16 });
  const beat = async (ids: number[]) => {
    const azs = ["a", "a", "b", "b", "c", "c"];
    for (const i of ids) await cp.heartbeat({ nodeId: NodeId(`n${i}`), az: Az(azs[i - 1]!), address: `127.0.0.1:${7100 + i}` });
  };
  clock.advance(3500);
  await beat([1, 2, 3, 4, 5]); // n6 is dead
  let v = await cp.addProtectionGroup(VolumeId("v"));
  assert.equal(v.pgs.length, 2);
  assert.deepEqual(v.pgs[1]!.segments.map((s) => s.nodeId), ["n1", "n2", "n3", "n4", "n5", "n6"]);
  clock.advance(3500);
  await beat([1, 2, 5, 6]); // a whole AZ (b) is dead
  v = await cp.addProtectionGroup(VolumeId("v"));
  assert.equal(v.pgs.length, 3);
  clock.advance(3500);
  await beat([1, 2, 5]); // three dead: a new PG would have no write quorum
  await assert.rejects(cp.addProtectionGroup(VolumeId("v")), (e) =>
    isBorealisError(e, "PLACEMENT_IMPOSSIBLE") && /AZ a: n1, n2; AZ c: n5/.test(e.message));
  assert.equal((await cp.getVolume(VolumeId("v"))).pgs.length, 3);
});

test("volume epoch: compare-and-set bump; a stale expectation is CONFLICT with the current epoch", async (t) => {
  const { cp } = await open(t);
  await registerSix(cp);
  await cp.createVolume({ volumeId: VolumeId("v"), pgPages: 16 });
  assert.equal(await cp.bumpVolumeEpoch(VolumeId("v"), Epoch(1)), 2);
  await assert.rejects(cp.bumpVolumeEpoch(VolumeId("v"), Epoch(1)), (e) =>
    isBorealisError(e, "CONFLICT") && e.details.epoch === 2);
  // Two recoveries racing from the same epoch: exactly one wins.
  const results = await Promise.allSettled([cp.bumpVolumeEpoch(VolumeId("v"), Epoch(2)), cp.bumpVolumeEpoch(VolumeId("v"), Epoch(2))]);
  assert.deepEqual(results.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
  assert.equal((await cp.getVolume(VolumeId("v"))).volumeEpoch, 3);
  await assert.rejects(cp.bumpVolumeEpoch(VolumeId("nope"), Epoch(1)), isCode("VOLUME_NOT_FOUND"));
});

test("writer record: only the current epoch may claim the volume", async (t) => {
  const { cp } = await open(t);
  await registerSix(cp);
  await cp.createVolume({ volumeId: VolumeId("v"), pgPages: 16 });
  const v1 = await cp.setWriter({ volumeId: VolumeId("v"), endpoint: "http://127.0.0.1:8080", epoch: Epoch(1) });
  assert.equal(v1.writer?.endpoint, "http://127.0.0.1:8080");
  assert.equal(v1.writer?.epoch, 1);
  await cp.bumpVolumeEpoch(VolumeId("v"), Epoch(1));
  await assert.rejects(cp.setWriter({ volumeId: VolumeId("v"), endpoint: "http://old", epoch: Epoch(1) }), isCode("WRITER_FENCED"));
  await assert.rejects(cp.setWriter({ volumeId: VolumeId("v"), endpoint: "http://future", epoch: Epoch(3) }), isCode("INVALID_ARGUMENT"));
  const v2 = await cp.setWriter({ volumeId: VolumeId("v"), endpoint: "http://127.0.0.1:8081", epoch: Epoch(2) });
  assert.deepEqual([v2.writer?.endpoint, v2.writer?.epoch], ["http://127.0.0.1:8081", 2]);
});

test("everything but liveness survives a control-plane restart", async (t) => {
  const { dir, env, kv, cp } = await open(t);
  await registerSix(cp);
  await cp.createVolume({ volumeId: VolumeId("v"), pgPages: 16, pgCount: 2 });
  await cp.bumpVolumeEpoch(VolumeId("v"), Epoch(1));
  const before = await cp.getVolume(VolumeId("v"));
  await kv.close();

  const kv2 = await EmbeddedKv.open(env, dir);
  t.after(() => kv2.close());
  const cp2 = new ControlPlane(env, kv2);
  assert.deepEqual(await cp2.getVolume(VolumeId("v")), before);
  const nodes = await cp2.listNodes();
  assert.equal(nodes.length, 6);
  assert.ok(nodes.every((n) => !n.alive && n.lastHeartbeatAgeMs === null && n.segmentCount === 2));
});
