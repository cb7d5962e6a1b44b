import { test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import * as http from "node:http";
import { Az, Epoch, NodeId, VolumeId } from "../../src/core/types.js";
import { isBorealisError, type ErrorCode } from "../../src/core/errors.js";
import { ControlPlane } from "../../src/control-plane/control-plane.js";
import { EmbeddedKv } from "../../src/control-plane/embedded-kv.js";
import { ControlPlaneClient } from "../../src/control-plane/client.js";
import { startControlPlaneServer, DEFAULT_MAX_BODY_BYTES } from "../../src/control-plane/http-server.js";
import { quietEnv, tempDir } from "./helpers.js";

const isCode = (code: ErrorCode) => (e: unknown) => isBorealisError(e, code);

async function serve(t: { after: (fn: () => Promise<void>) => void }) {
  const { dir, cleanup } = await tempDir();
  const env = quietEnv();
  const kv = await EmbeddedKv.open(env, dir);
  const server = await startControlPlaneServer(env, new ControlPlane(env, kv), { listen: { host: "127.0.0.1", port: 0 } });
  t.after(async () => { await server.close(); await kv.close(); await cleanup(); });
  return { server, client: new ControlPlaneClient(server.url, { timeoutMs: 2000 }) };
}

async function raw(url: string, method: string, body?: string | Uint8Array): Promise<{ status: number; json: any }> {
  const res = await fetch(url, { method, ...(body === undefined ? {} : { body, headers: { "content-type": "application/json" } }) });
  return { status: res.status, json: await res.json() };
}

test("the API end to end through ControlPlaneClient", async (t) => {
  const { server, client } = await serve(t);
  assert.ok(server.address.port > 0);
  assert.deepEqual(await client.health(), { ok: true, service: "borealis-control-plane" });
  const azs = ["a", "a", "b", "b", "c", "c"];
  for (let i = 0; i < 6; i++) {
    const r = await client.heartbeat({ nodeId: NodeId(`n${i + 1}`), az: Az(azs[i]!), address: `127.0.0.1:${7101 + i}` });
    assert.equal(r.node.alive, true);
  }
  const nodes = await client.listNodes();
  assert.deepEqual(nodes.map((n) => [n.nodeId, n.az, n.alive]), azs.map((az, i) => [`n${i + 1}`, az, true]));

  const created = await client.createVolume({ volumeId: VolumeId("db"), pgPages: 16, pgCount: 2 });
  assert.equal(created.pgs.length, 2);
  assert.deepEqual(created.pgs[1]!.geometry, { volumeId: "db", pgId: 1, firstPage: 17, pageCount: 16, pageSize: 4096 });
  assert.deepEqual(await client.getVolume(VolumeId("db")), created);
  assert.deepEqual((await client.listVolumes()).map((v) => v.volumeId), ["db"]);
  await assert.rejects(client.createVolume({ volumeId: VolumeId("db") }), isCode("CONFLICT"));

  const grown = await client.addProtectionGroup(VolumeId("db"));
  assert.equal(grown.pgs.length, 3);
  assert.equal(grown.geometryEpoch, 2);

  assert.equal(await client.bumpVolumeEpoch(VolumeId("db"), Epoch(1)), 2);
  await assert.rejects(client.bumpVolumeEpoch(VolumeId("db"), Epoch(1)), (e) =>
    isBorealisError(e, "CONFLICT") && e.details.epoch === 2 && e.details.httpStatus === 409);

  const withWriter = await client.setWriter({ volumeId: VolumeId("db"), endpoint: "http://127.0.0.1:8080", epoch: Epoch(2) });
  assert.equal(withWriter.writer?.endpoint, "http://127.0.0.1:8080");
  await assert.rejects(client.setWriter({ volumeId: VolumeId("db"), endpoint: "http://x", epoch: Epoch(1) }), isCode("WRITER_FENCED"));
  await assert.rejects(client.getVolume(VolumeId("nope")), (e) => isBorealisError(e, "VOLUME_NOT_FOUND") && e.details.httpStatus === 404);
});

test("bad requests: malformed JSON, oversized body, unknown route, wrong method, invalid fields", async (t) => {
  const { server } = await serve(t);
  const u = server.url;

  const bad = await raw(`${u}/v1/volumes`, "POST", "{ nope");
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, "PROTOCOL_ERROR");
  assert.match(bad.json.error.message, /not valid JSON/);

  const big = await raw(`${u}/v1/volumes`, "POST", JSON.stringify({ volumeId: "x".repeat(DEFAULT_MAX_BODY_BYTES) }));
  assert.equal(big.status, 413);
  assert.equal(big.json.error.code, "FRAME_TOO_LARGE");

  // Without a content-length (chunked), the limit is enforced while reading, before buffering it all.
  const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(`${u}/v1/volumes`, { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
      let body = "";
      res.on("data", (b: Buffer) => { body += b.toString(); });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    for (let i = 0; i < 8; i++) req.write("x".repeat(DEFAULT_MAX_BODY_BYTES / 4));
    req.end();
  });
  assert.equal(chunked.status, 413);
  assert.equal(JSON.parse(chunked.body).error.code, "FRAME_TOO_LARGE");

  const unknown = await raw(`${u}/v1/nothing`, "GET");
  assert.equal(unknown.status, 404);
  assert.equal(unknown.json.error.code, "NOT_FOUND");
  assert.match(unknown.json.error.message, /GET \/v1\/nothing/);

  const wrong = await raw(`${u}/v1/nodes`, "DELETE");
  assert.equal(wrong.status, 405);
  assert.match(wrong.json.error.message, /use GET/);

  const invalid = await raw(`${u}/v1/volumes`, "POST", JSON.stringify({ volumeId: "v", pageSize: 3000 }));
  assert.equal(invalid.status, 400);
  assert.equal(invalid.json.error.code, "INVALID_ARGUMENT");
  const extra = await raw(`${u}/v1/nodes/heartbeat`, "POST", JSON.stringify({ nodeId: "n1", az: "a", address: "127.0.0.1:1", x: 1 }));
  assert.equal(extra.status, 400);
  assert.match(extra.json.error.message, /unknown field "x"/);
  const empty = await raw(`${u}/v1/volumes/v/epoch`, "POST");
  assert.equal(empty.status, 400);

  const impossible = await raw(`${u}/v1/volumes`, "POST", JSON.stringify({ volumeId: "v" }));
  assert.equal(impossible.status, 409);
  assert.equal(impossible.json.error.code, "PLACEMENT_IMPOSSIBLE");

  // The server is still healthy after all of that, on a fresh and on a reused connection.
  assert.equal((await raw(`${u}/health`, "GET")).status, 200);
  assert.equal((await raw(`${u}/health`, "GET")).status, 200);
});

test("the server refuses non-loopback addresses and reports a taken port clearly", async (t) => {
  const { server } = await serve(t);
  const env = quietEnv();
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const kv = await EmbeddedKv.open(env, dir);
  t.after(() => kv.close());
  const cp = new ControlPlane(env, kv);
  await assert.rejects(startControlPlaneServer(env, cp, { listen: { host: "0.0.0.0", port: 0 } }), (e) =>
    isBorealisError(e, "INVALID_ARGUMENT") && /loopback only/.test(e.message));
  await assert.rejects(startControlPlaneServer(env, cp, { listen: server.address }), (e) =>
    isBorealisError(e, "INVALID_ARGUMENT") && /in use/.test(e.message));
});

test("client: unreachable is CONNECTION_CLOSED, silent is TIMEOUT, bad URLs are refused", async (t) => {
  // A port nobody listens on: bind one, note it, close it.
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", () => r()));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  await assert.rejects(new ControlPlaneClient(`http://127.0.0.1:${port}`).health(), (e) =>
    isBorealisError(e, "CONNECTION_CLOSED") && /cannot reach the control plane/.test(e.message));

  const sockets: net.Socket[] = [];
  const silent = net.createServer((s) => { sockets.push(s); });
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
  t.after(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); silent.close(() => r()); }));
  const silentPort = (silent.address() as net.AddressInfo).port;
  await assert.rejects(new ControlPlaneClient(`http://127.0.0.1:${silentPort}`, { timeoutMs: 200 }).listNodes(), (e) =>
    isBorealisError(e, "TIMEOUT") && /within 200 ms/.test(e.message));

  assert.throws(() => new ControlPlaneClient("127.0.0.1:7070"), isCode("INVALID_ARGUMENT"));
  assert.throws(() => new ControlPlaneClient("https://x:1"), isCode("INVALID_ARGUMENT"));
  assert.equal(new ControlPlaneClient("http://127.0.0.1:7070/").url, "http://127.0.0.1:7070");
});
