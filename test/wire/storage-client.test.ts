import { test } from "node:test";
import assert from "node:assert/strict";
import { Epoch, Lsn, PageNo, PgId, VolumeId } from "../../src/core/types.js";
import type { Response } from "../../src/wire/messages.js";
import { StorageClient, type StorageClientState } from "../../src/wire/storage-client.js";
import { deferred, echoHandler, env, isCode, makeRecords, sleep, startServer } from "./helpers.js";

const key = { volumeId: VolumeId("vol"), pgId: PgId(0) };
const epochs = { volumeEpoch: Epoch(1), membershipEpoch: Epoch(1) };
const options = { role: "writer" as const, senderId: "w1", reconnect: { initialDelayMs: 20, maxDelayMs: 100 } };

async function until(what: string, check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = env.clock.nowMs() + timeoutMs;
  while (!check()) {
    if (env.clock.nowMs() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

test("connects lazily and the typed helpers unwrap their answers", async () => {
  const { server, address } = await startServer();
  const client = new StorageClient(env, address, options);
  try {
    assert.equal(client.state, "down");
    assert.equal(server.connectionCount, 0, "nothing connects before the first request");
    const rtt = await client.ping();
    assert.ok(rtt >= 0);
    assert.equal(client.state, "connected");
    assert.equal(client.peer?.nodeId, "n1");
    assert.equal(await client.writeBatch({ key, epochs, writerVdl: Lsn(0), records: makeRecords(key, 1, 3) }), 3);
    const page = await client.getPage({ key, epochs, pageNo: PageNo(5), readPoint: Lsn(3), minScl: Lsn(0) });
    assert.equal(page.pageLsn, 3);
    assert.equal((await client.getSegmentState({ key, epochs })).scl, 7);
    assert.equal((await client.setEpoch({ key, epochs, annulments: [] })).scl, 7);
    assert.equal((await client.annul({ key, epochs, annulments: [{ epoch: Epoch(1), aboveLsn: Lsn(2) }] })).scl, 7);
    const geometry = { volumeId: key.volumeId, pgId: key.pgId, firstPage: PageNo(1), pageCount: 10, pageSize: 4096 };
    assert.deepEqual((await client.openSegment({ geometry, epochs })).geometry, geometry);
    const chunk = await client.readRecords({ key, epochs, afterLsn: Lsn(0), upToLsn: Lsn(4), maxBytes: 1 << 20 });
    assert.deepEqual(chunk.records.map((r) => r.lsn), [1, 2, 3, 4]);
    assert.equal((await client.nodeStatus()).az, "az-a");
  } finally {
    client.close();
    await server.close();
  }
});

test("requests issued while connecting wait for the connection; all share it", async () => {
  const { server, address } = await startServer();
  const client = new StorageClient(env, address, options);
  try {
    const answers = await Promise.all(Array.from({ length: 50 }, () => client.request({ type: "ping" })));
    assert.equal(answers.length, 50);
    assert.equal(server.connectionCount, 1);
  } finally {
    client.close();
    await server.close();
  }
});

test("pending requests fail fast when the node goes away; the client reconnects when it is back", async () => {
  const never = deferred<Response>();
  const first = await startServer({ handler: (req) => req.type === "nodeStatus" ? never.promise : echoHandler(req, undefined as never) });
  const address = first.address;
  const client = new StorageClient(env, address, options);
  const states: StorageClientState[] = [];
  client.onStateChange((s) => states.push(s));
  try {
    await client.connect();
    const pending = client.nodeStatus({ timeoutMs: 60_000 });
    await sleep(10);
    const started = env.clock.nowMs();
    await first.server.close();
    await assert.rejects(pending, isCode("CONNECTION_CLOSED"));
    assert.ok(env.clock.nowMs() - started < 1000, "failed fast, not at its timeout");

    // While the node is down, requests are refused at once rather than held.
    await until("down", () => client.state === "down");
    await assert.rejects(client.ping(), isCode("CONNECTION_CLOSED"));

    // Let a few reconnect attempts fail, then bring the node back on the same port.
    await sleep(150);
    const second = await startServer({}, address);
    try {
      await until("reconnected", () => client.state === "connected");
      assert.equal(await client.writeBatch({ key, epochs, writerVdl: Lsn(0), records: makeRecords(key, 1, 2) }), 2);
      assert.deepEqual(states.slice(0, 3), ["connecting", "connected", "down"]);
      assert.equal(states[states.length - 1], "connected");
      assert.ok(states.filter((s) => s === "connecting").length >= 2, `states: ${states.join(" → ")}`);
    } finally {
      client.close();
      await second.server.close();
    }
  } finally {
    client.close();
  }
});

test("connect() to a node that is not there rejects with CONNECTION_CLOSED and schedules a retry", async () => {
  // Bind and release a port so that nothing listens on it.
  const { server, address } = await startServer();
  await server.close();
  const client = new StorageClient(env, address, options);
  try {
    await assert.rejects(client.connect(), isCode("CONNECTION_CLOSED"));
    assert.equal(client.state, "down");
    await assert.rejects(client.ping(), isCode("CONNECTION_CLOSED"));
  } finally {
    client.close();
  }
  await assert.rejects(client.ping(), isCode("CONNECTION_CLOSED"));
});

test("close() rejects pending requests and stops reconnecting", async () => {
  const never = deferred<Response>();
  const { server, address } = await startServer({ handler: () => never.promise });
  const client = new StorageClient(env, address, options);
  try {
    await client.connect();
    const p = client.ping();
    await sleep(5);
    client.close();
    await assert.rejects(p, isCode("CONNECTION_CLOSED"));
    assert.equal(client.state, "down");
    await sleep(100);
    assert.equal(client.state, "down", "no reconnect after close");
    await until("server saw the close", () => server.connectionCount === 0);
  } finally {
    await server.close();
  }
});
