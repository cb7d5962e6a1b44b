import { test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { Az, Epoch, Lsn, NodeId, PageNo, VolumeId, formatHostPort } from "../../src/core/types.js";
import { realEnv, silentLogger } from "../../src/env/real.js";
import { ControlPlane } from "../../src/control-plane/control-plane.js";
import { EmbeddedKv } from "../../src/control-plane/embedded-kv.js";
import { startControlPlaneServer } from "../../src/control-plane/http-server.js";
import { RpcServer } from "../../src/wire/rpc-server.js";
import type { Response, SegmentState } from "../../src/wire/messages.js";
import { collectStatus, renderStatus, type StatusReport } from "../../src/cli/commands/status.js";
import { freePort, runCli } from "./helpers.js";

/**
 * A control plane with six registered nodes and one volume of two PGs. Nodes n1..n5 are fake storage
 * nodes answering nodeStatus (n2 hosts its segments at an old volume epoch); n6 is registered but not
 * listening. (A realistic volume id on purpose: the nodeStatus decoder in messages.ts currently refuses
 * segment states shorter than 16 bytes, which a two-letter volume id with small LSNs produces.)
 */
async function cluster(t: { after: (fn: () => Promise<void>) => void }) {
  const env = realEnv({ log: silentLogger });
  const dir = await mkdtemp(path.join(tmpdir(), "borealis-status-"));
  const kv = await EmbeddedKv.open(env, dir);
  const cp = new ControlPlane(env, kv);
  const server = await startControlPlaneServer(env, cp, { listen: { host: "127.0.0.1", port: 0 } });
  const nodes: RpcServer[] = [];
  t.after(async () => {
    await Promise.all(nodes.map((n) => n.close()));
    await server.close();
    await kv.close();
    await rm(dir, { recursive: true, force: true });
  });
  const azs = ["a", "a", "b", "b", "c", "c"];
  const segmentsOf = new Map<string, SegmentState[]>();
  for (let i = 0; i < 6; i++) {
    const nodeId = `n${i + 1}`;
    let address: string;
    if (i < 5) {
      const rpc = new RpcServer(env, {
        nodeId, az: azs[i]!,
        handler: async (req): Promise<Response> => req.type === "nodeStatus"
          ? { type: "nodeStatus", nodeId, az: azs[i]!, fenced: false, segments: segmentsOf.get(nodeId) ?? [] }
          : { type: "error", code: "INVALID_ARGUMENT", message: "fake node", details: {} },
      });
      address = formatHostPort(await rpc.listen({ host: "127.0.0.1", port: 0 }));
      nodes.push(rpc);
    } else {
      address = `127.0.0.1:${await freePort()}`;
    }
    await cp.heartbeat({ nodeId: NodeId(nodeId), az: Az(azs[i]!), address });
  }
  const volume = await cp.createVolume({ volumeId: VolumeId("orders-db"), pgPages: 16, pgCount: 2 });
  await cp.bumpVolumeEpoch(VolumeId("orders-db"), Epoch(1));
  for (const pg of volume.pgs) {
    for (const s of pg.segments) {
      const list = segmentsOf.get(s.nodeId) ?? [];
      list.push({
        geometry: pg.geometry, epochs: { volumeEpoch: Epoch(s.nodeId === "n2" ? 1 : 2), membershipEpoch: Epoch(1) },
        scl: Lsn(40 + pg.pgId), highestLsn: Lsn(42 + pg.pgId), knownVdl: Lsn(40), materializedLsn: Lsn(0), retentionLsn: Lsn(0), highestPageNo: PageNo(0),
      });
      segmentsOf.set(s.nodeId, list);
    }
  }
  return { env, url: server.url, cp };
}

/** A stand-in writer endpoint: answers GET /health as `answer` says (or never, for "hang"). */
async function fakeWriter(t: { after: (fn: () => Promise<void>) => void }, answer: { status: number; body: unknown } | "hang"): Promise<string> {
  const server = http.createServer((req, res) => {
    if (answer === "hang") return; // accepts, never answers
    res.writeHead(req.url === "/health" ? answer.status : 404, { "content-type": "application/json" });
    res.end(JSON.stringify(answer.body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

test("status collects the control plane's view and each node's own, and renders aligned tables", async (t) => {
  const { env, url } = await cluster(t);
  const report = await collectStatus(env, url, 1000);
  assert.equal(report.nodes.length, 6);
  assert.ok(report.nodes.slice(0, 5).every((n) => n.state.reachable && n.state.segments.length === 2));
  const n6 = report.nodes[5]!;
  assert.equal(n6.state.reachable, false);
  assert.equal(report.volumes[0]!.volumeEpoch, 2);

  const lines = renderStatus(report);
  const text = lines.join("\n");
  assert.match(text, /Storage nodes: 6, 6 alive/);
  assert.match(text, /^ {2}NODE +AZ +ADDRESS +ALIVE +LAST HEARTBEAT +SEGMENTS +NODE SAYS$/m);
  assert.match(text, /^ {2}n1 +a +127\.0\.0\.1:\d+ +yes +\S.* +2 +2 segments$/m);
  assert.match(text, /^ {2}n6 +c .* unreachable: /m);
  assert.match(text, /Volume orders-db: 2 protection groups of 16 pages × 4096 B, volume epoch 2, geometry epoch 1, no writer yet/);
  assert.match(text, /^ {4}0 +1\.\.16 +1 +n1 +a +yes +40 +42 +2\/1$/m);
  assert.match(text, /^ {4}1 +17\.\.32 +1 +n1 +a +yes +41 +43 +2\/1$/m);
  assert.match(text, / n2 +a +yes +40 +42 +1\/1 \(behind\)$/m, "a segment at an older epoch is flagged");
  assert.match(text, / n6 +c +yes +\? +\? +\?$/m, "an unreachable node's segments are unknown, not invented");
  // Aligned: every row of the node table starts its ADDRESS column at the same offset.
  const nodeRows = lines.filter((l) => /^ {2}(NODE|n\d) /.test(l));
  assert.equal(new Set(nodeRows.map((l) => l.indexOf(l.startsWith("  NODE") ? "ADDRESS" : "127.0.0.1"))).size, 1);
});

test("borealis status --json prints one JSON document; the table form exits 0 too", async (t) => {
  const { url } = await cluster(t);
  const r = await runCli(["status", "--json", "--control-plane", url, "--timeout-ms", "1000"]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as StatusReport;
  assert.equal(report.controlPlane.url, url);
  assert.deepEqual(report.nodes.map((n) => n.nodeId), ["n1", "n2", "n3", "n4", "n5", "n6"]);
  assert.equal(report.volumes[0]!.pgs.length, 2);
  assert.equal(report.volumes[0]!.pgs[0]!.segments.length, 6);
  const human = await runCli(["status", "--control-plane", url, "--timeout-ms", "1000"]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /Volume orders-db:/);
  assert.equal(human.stderr, "");
});

test("status asks each volume's writer for its VCL, VDL and epoch, and says when it cannot", async (t) => {
  const { env, url, cp } = await cluster(t);
  const ok = await fakeWriter(t, { status: 200, body: { status: "ok", role: "writer", epoch: 2, vcl: 57, vdl: 55, waitingCommits: 3, fenced: null, commitsStopped: null } });
  await cp.setWriter({ volumeId: VolumeId("orders-db"), endpoint: ok, epoch: Epoch(2) });
  const volumes: [string, string][] = [
    ["stopped-db", await fakeWriter(t, { status: 503, body: { status: "unavailable", epoch: 2, vcl: 9, vdl: 9, waitingCommits: 0, fenced: null, commitsStopped: "volume refused the MTR" } })],
    ["gone-db", `http://127.0.0.1:${await freePort()}`],
    ["stuck-db", await fakeWriter(t, "hang")],
  ];
  for (const [id, endpoint] of volumes) {
    await cp.createVolume({ volumeId: VolumeId(id), pgPages: 16 });
    await cp.bumpVolumeEpoch(VolumeId(id), Epoch(1));
    await cp.setWriter({ volumeId: VolumeId(id), endpoint, epoch: Epoch(2) });
  }

  const started = Date.now();
  const report = await collectStatus(env, url, 800);
  assert.ok(Date.now() - started < 5000, "a writer that never answers does not hold status up");
  const byId = new Map(report.volumes.map((v) => [v.volumeId as string, v.writerState]));
  assert.deepEqual(byId.get("orders-db"), { reachable: true, endpoint: ok, status: "ok", epoch: 2, vcl: 57, vdl: 55, waitingCommits: 3, problem: null });
  assert.deepEqual(byId.get("stopped-db"), {
    reachable: true, endpoint: volumes[0]![1], status: "unavailable", epoch: 2, vcl: 9, vdl: 9, waitingCommits: 0, problem: "volume refused the MTR",
  });
  assert.deepEqual(byId.get("gone-db"), { reachable: false, endpoint: volumes[1]![1], error: "ECONNREFUSED" });
  assert.deepEqual(byId.get("stuck-db"), { reachable: false, endpoint: volumes[2]![1], error: "no answer within 800 ms" });

  const text = renderStatus(report).join("\n");
  assert.match(text, /Volume orders-db: .*writer http:\/\/127\.0\.0\.1:\d+ \(epoch 2\)\n {4}Writer says: ok, VCL 57, VDL 55, epoch 2, 3 commits waiting for durability\n/);
  assert.match(text, /Volume stopped-db: .*\n {4}Writer says: unavailable \(volume refused the MTR\), VCL 9, VDL 9, epoch 2, 0 commits waiting/);
  assert.match(text, /Volume gone-db: .*\n {4}Writer unreachable at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED\n/);
  assert.match(text, /Volume stuck-db: .*\n {4}Writer unreachable at http:\/\/127\.0\.0\.1:\d+: no answer within 800 ms\n/);

  const r = await runCli(["status", "--json", "--control-plane", url, "--timeout-ms", "800"]);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout) as StatusReport;
  const orders = json.volumes.find((v) => v.volumeId === "orders-db")!;
  assert.equal(orders.writerState?.reachable, true);
  assert.deepEqual(orders.writerState?.reachable === true ? [orders.writerState.vcl, orders.writerState.vdl, orders.writerState.epoch] : null, [57, 55, 2]);
  assert.equal(json.volumes.find((v) => v.volumeId === "gone-db")!.writerState?.reachable, false);
});
