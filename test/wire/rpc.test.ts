import { test } from "node:test";
import assert from "node:assert/strict";
import { BorealisError, isBorealisError } from "../../src/core/errors.js";
import { Epoch, Lsn, PageNo, PgId, VolumeId } from "../../src/core/types.js";
import { FRAME_HEADER_BYTES, FrameKind, encodeRequestFrame } from "../../src/wire/frame.js";
import type { Response } from "../../src/wire/messages.js";
import { encodeRecord } from "../../src/wire/record.js";
import { RpcClient } from "../../src/wire/rpc-client.js";
import type { RpcHandler } from "../../src/wire/rpc-server.js";
import {
  RawConnection, countingEnv, deferred, echoHandler, env, frameAround, isCode, makeRecords, sleep, startServer,
} from "./helpers.js";

const key = { volumeId: VolumeId("vol"), pgId: PgId(3) };
const epochs = { volumeEpoch: Epoch(1), membershipEpoch: Epoch(1) };
const clientOptions = { role: "writer" as const, senderId: "test-writer" };

function errorOf(r: Response): { code: string; message: string } {
  assert.equal(r.type, "error");
  return r as { code: string; message: string };
}

test("hello, then every request type answered through RpcClient", async () => {
  const { server, address } = await startServer();
  const client = await RpcClient.connect(env, address, clientOptions);
  try {
    assert.deepEqual(client.peer, { nodeId: "n1", az: "az-a", version: 1, maxFrameBytes: 16 * 1024 * 1024, maxInFlight: 256 });
    assert.equal((await client.request({ type: "ping" })).type, "pong");
    assert.equal((await client.request({ type: "nodeStatus" })).nodeId, "n1");
    const records = makeRecords(key, 10, 5);
    assert.equal((await client.request({ type: "writeBatch", key, epochs, writerVdl: Lsn(0), records })).scl, 14);
    const page = await client.request({ type: "getPage", key, epochs, pageNo: PageNo(42), readPoint: Lsn(9), minScl: Lsn(0) });
    assert.equal(new TextDecoder().decode(page.bytes), "page 42");
    assert.equal(page.pageLsn, 9);
    // The records come back checksummed under the request's key, which the client kept for decoding.
    const chunk = await client.request({ type: "readRecords", key, epochs, afterLsn: Lsn(100), upToLsn: Lsn(110), maxBytes: 1 << 20 });
    assert.deepEqual(chunk.records.map((r) => r.lsn), [101, 102, 103, 104, 105, 106, 107, 108, 109, 110]);
    assert.equal((await client.request({ type: "getSegmentState", key, epochs })).state.scl, 7);
    assert.equal((await client.request({ type: "setEpoch", key, epochs, annulments: [] })).state.scl, 7);
    const annulments = [{ epoch: Epoch(1), aboveLsn: Lsn(3) }];
    assert.equal((await client.request({ type: "annul", key, epochs, annulments })).type, "segmentState");
    const geometry = { volumeId: VolumeId("vol"), pgId: PgId(3), firstPage: PageNo(1), pageCount: 10, pageSize: 4096 };
    assert.deepEqual((await client.request({ type: "openSegment", geometry, epochs })).state.geometry, geometry);
  } finally {
    client.close();
    await server.close();
  }
});

test("many pipelined requests are answered out of order and matched to their callers", async () => {
  const handler: RpcHandler = async (req) => {
    if (req.type !== "getPage") return echoHandler(req, undefined as never);
    // Later requests answer first: the response order is the reverse of the request order, roughly.
    await sleep(req.pageNo % 7 === 0 ? 20 : (1000 - req.pageNo) % 5);
    return { type: "page", pageLsn: Lsn(req.pageNo), bytes: new Uint8Array([req.pageNo & 0xff]) };
  };
  const { server, address } = await startServer({ handler });
  const client = await RpcClient.connect(env, address, clientOptions);
  try {
    const n = 1000;
    const answers = await Promise.all(Array.from({ length: n }, (_, i) =>
      client.request({ type: "getPage", key, epochs, pageNo: PageNo(i + 1), readPoint: Lsn(0), minScl: Lsn(0) })));
    answers.forEach((a, i) => {
      assert.equal(a.pageLsn, i + 1);
      assert.equal(a.bytes[0], (i + 1) & 0xff);
    });
  } finally {
    client.close();
    await server.close();
  }
});

test("requests of one tick leave in one write; responses of one tick in one write", async () => {
  const counting = countingEnv(env);
  const { server, address } = await startServer({}, undefined, counting.env);
  const client = await RpcClient.connect(counting.env, address, clientOptions);
  try {
    await client.request({ type: "ping" });
    const before = { ...counting.counts };
    await Promise.all(Array.from({ length: 200 }, () => client.request({ type: "ping" })));
    const clientWrites = counting.counts.clientWrites - before.clientWrites;
    const serverWrites = counting.counts.serverWrites - before.serverWrites;
    const serverChunks = counting.counts.serverChunks - before.serverChunks;
    assert.equal(clientWrites, 1, "200 requests in one tick → one write");
    assert.ok(serverWrites <= serverChunks, `server wrote ${serverWrites} times for ${serverChunks} chunks received`);
  } finally {
    client.close();
    await server.close();
  }
});

test("a handler's BorealisError reaches the caller with its code and details; other errors are INTERNAL", async () => {
  const handler: RpcHandler = async (req) => {
    if (req.type === "getPage") throw new BorealisError("READ_POINT_ABOVE_SCL", "above", { scl: 41 });
    if (req.type === "nodeStatus") throw new Error("handler bug");
    return echoHandler(req, undefined as never);
  };
  const { server, address } = await startServer({ handler });
  const client = await RpcClient.connect(env, address, clientOptions);
  try {
    await assert.rejects(client.request({ type: "getPage", key, epochs, pageNo: PageNo(1), readPoint: Lsn(50), minScl: Lsn(0) }),
      (e) => isBorealisError(e, "READ_POINT_ABOVE_SCL") && e.details.scl === 41 && e.retryable);
    await assert.rejects(client.request({ type: "nodeStatus" }), isCode("INTERNAL"));
    assert.equal((await client.request({ type: "ping" })).type, "pong", "the connection survives error responses");
  } finally {
    client.close();
    await server.close();
  }
});

test("the server answers TOO_MANY_IN_FLIGHT beyond its limit without running the handler", async () => {
  const gate = deferred();
  let calls = 0;
  const handler: RpcHandler = async (req) => {
    calls++;
    await gate.promise;
    return echoHandler(req, undefined as never);
  };
  const { server, address } = await startServer({ handler, maxInFlight: 4 });
  const raw = await RawConnection.open(address);
  try {
    raw.write([
      encodeRequestFrame(1, { type: "hello", minVersion: 1, maxVersion: 1, role: "writer", senderId: "raw", maxFrameBytes: 1 << 20 }),
      ...Array.from({ length: 10 }, (_, i) => encodeRequestFrame(100 + i, { type: "ping" })),
    ]);
    await raw.waitFrames(7);
    assert.equal(raw.response(0).type, "helloOk");
    for (let i = 1; i < 7; i++) {
      assert.equal(errorOf(raw.response(i)).code, "TOO_MANY_IN_FLIGHT");
      assert.equal(raw.frames[i]!.requestId, 104 + i - 1);
    }
    assert.equal(calls, 4);
    gate.resolve();
    await raw.waitFrames(11);
    assert.deepEqual(raw.frames.slice(7).map((f) => f.requestId).sort(), [100, 101, 102, 103]);
    assert.equal(calls, 4);
    assert.ok(!raw.ended);
  } finally {
    raw.destroy();
    await server.close();
  }
});

test("the client keeps to the server's window, queues locally, and refuses beyond its queue bound", async () => {
  let running = 0;
  let peak = 0;
  const handler: RpcHandler = async (req) => {
    running++;
    peak = Math.max(peak, running);
    await sleep(2);
    running--;
    return echoHandler(req, undefined as never);
  };
  const { server, address } = await startServer({ handler, maxInFlight: 4 });
  const client = await RpcClient.connect(env, address, { ...clientOptions, maxQueued: 20 });
  try {
    assert.equal(client.peer.maxInFlight, 4);
    const ok = Array.from({ length: 24 }, () => client.request({ type: "ping" }));
    assert.equal(client.inFlight, 4);
    assert.equal(client.queued, 20);
    await assert.rejects(client.request({ type: "ping" }), isCode("TOO_MANY_IN_FLIGHT"));
    await Promise.all(ok);
    assert.equal(peak, 4);
    assert.equal(client.inFlight + client.queued, 0);
  } finally {
    client.close();
    await server.close();
  }
});

test("a request times out with TIMEOUT; the connection stays usable and the late answer is dropped", async () => {
  const late = deferred();
  const handler: RpcHandler = async (req) => {
    if (req.type === "nodeStatus") await late.promise;
    return echoHandler(req, undefined as never);
  };
  const { server, address } = await startServer({ handler });
  const client = await RpcClient.connect(env, address, { ...clientOptions, requestTimeoutMs: 5_000 });
  try {
    const started = env.clock.nowMs();
    await assert.rejects(client.request({ type: "nodeStatus" }, { timeoutMs: 80 }), isCode("TIMEOUT"));
    const waited = env.clock.nowMs() - started;
    assert.ok(waited >= 75 && waited < 1000, `timed out after ${waited} ms`);
    assert.equal(client.inFlight, 1, "the slot stays taken until the server answers");
    assert.equal((await client.request({ type: "ping" })).type, "pong");
    late.resolve();
    await sleep(20);
    assert.equal(client.inFlight, 0);
    assert.ok(!client.closed);
    // Queued requests time out too.
  } finally {
    client.close();
    await server.close();
  }
});

test("requests waiting in the local queue time out as well", async () => {
  const gate = deferred();
  const handler: RpcHandler = async (req) => {
    await gate.promise;
    return echoHandler(req, undefined as never);
  };
  const { server, address } = await startServer({ handler, maxInFlight: 1 });
  const client = await RpcClient.connect(env, address, clientOptions);
  try {
    const first = client.request({ type: "ping" }, { timeoutMs: 5000 });
    const queued = client.request({ type: "ping" }, { timeoutMs: 50 });
    assert.equal(client.queued, 1);
    await assert.rejects(queued, isCode("TIMEOUT"));
    assert.equal(client.queued, 0);
    gate.resolve();
    await first;
  } finally {
    client.close();
    await server.close();
  }
});

test("losing the connection rejects every pending request with CONNECTION_CLOSED and calls onClose", async () => {
  const never = deferred<Response>();
  const { server, address } = await startServer({ handler: () => never.promise, maxInFlight: 2 });
  const client = await RpcClient.connect(env, address, clientOptions);
  const closed = deferred<BorealisError>();
  client.onClose((e) => closed.resolve(e));
  const pending = Array.from({ length: 5 }, () => client.request({ type: "ping" }));
  await sleep(20);
  await server.close();
  for (const p of pending) await assert.rejects(p, isCode("CONNECTION_CLOSED"));
  assert.equal((await closed.promise).code, "CONNECTION_CLOSED");
  await assert.rejects(client.request({ type: "ping" }), isCode("CONNECTION_CLOSED"));
  assert.ok(client.closed);
});

test("close() on the client rejects pending requests and ends the connection on the server", async () => {
  const never = deferred<Response>();
  const { server, address } = await startServer({ handler: () => never.promise });
  const client = await RpcClient.connect(env, address, clientOptions);
  try {
    const p = client.request({ type: "ping" });
    client.close();
    await assert.rejects(p, isCode("CONNECTION_CLOSED"));
    for (let i = 0; i < 100 && server.connectionCount > 0; i++) await sleep(5);
    assert.equal(server.connectionCount, 0);
  } finally {
    await server.close();
  }
});

test("version negotiation picks the highest common version, or refuses with UNSUPPORTED_VERSION", async () => {
  const { server, address } = await startServer({ versions: { min: 1, max: 3 } });
  try {
    const a = await RpcClient.connect(env, address, { ...clientOptions, versions: { min: 2, max: 9 } });
    assert.equal(a.peer.version, 3);
    a.close();
    const b = await RpcClient.connect(env, address, { ...clientOptions, versions: { min: 1, max: 2 } });
    assert.equal(b.peer.version, 2);
    b.close();
    await assert.rejects(RpcClient.connect(env, address, { ...clientOptions, versions: { min: 4, max: 9 } }), isCode("UNSUPPORTED_VERSION"));
    const raw = await RawConnection.open(address);
    raw.send(1, { type: "hello", minVersion: 5, maxVersion: 2, role: "admin", senderId: "x", maxFrameBytes: 1 << 20 });
    await raw.waitClosed();
    assert.equal(errorOf(raw.response(0)).code, "UNSUPPORTED_VERSION");
  } finally {
    await server.close();
  }
});

test("before hello, frames above 64 KiB are refused from the header and the connection closed", async () => {
  const { server, address } = await startServer();
  try {
    const raw = await RawConnection.open(address);
    const header = new Uint8Array(FRAME_HEADER_BYTES);
    new DataView(header.buffer).setUint32(0, 100 * 1024, true);
    raw.write(header);
    await raw.waitClosed();
    assert.equal(errorOf(raw.response(0)).code, "FRAME_TOO_LARGE");
    assert.equal(raw.frames[0]!.requestId, 0);

    // A hello itself is held to the pre-hello limit.
    const big = await RawConnection.open(address);
    big.send(1, { type: "hello", minVersion: 1, maxVersion: 1, role: "admin", senderId: "x".repeat(70_000), maxFrameBytes: 1 << 20 });
    await big.waitClosed();
    assert.equal(errorOf(big.response(0)).code, "FRAME_TOO_LARGE");

    // After hello the negotiated limit applies: a 300 KiB batch is fine.
    const client = await RpcClient.connect(env, address, clientOptions);
    const records = makeRecords(key, 1, 100, 3000);
    assert.equal(await client.request({ type: "writeBatch", key, epochs, writerVdl: Lsn(0), records }).then((a) => a.scl), 100);
    client.close();
  } finally {
    await server.close();
  }
});

test("requests above the server's limit are refused locally; responses above the client's, by the server", async () => {
  const handler: RpcHandler = async (req) => req.type === "getPage"
    ? { type: "page", pageLsn: Lsn(1), bytes: new Uint8Array(20_000) }
    : echoHandler(req, undefined as never);
  const { server, address } = await startServer({ handler, maxFrameBytes: 64 * 1024 });
  const client = await RpcClient.connect(env, address, { ...clientOptions, maxFrameBytes: 8192 });
  try {
    const records = makeRecords(key, 1, 40, 2000);
    await assert.rejects(client.request({ type: "writeBatch", key, epochs, writerVdl: Lsn(0), records }), isCode("FRAME_TOO_LARGE"));
    await assert.rejects(client.request({ type: "getPage", key, epochs, pageNo: PageNo(1), readPoint: Lsn(1), minScl: Lsn(0) }), isCode("FRAME_TOO_LARGE"));
    assert.equal((await client.request({ type: "ping" })).type, "pong");
  } finally {
    client.close();
    await server.close();
  }
});

test("protocol violations get an error response and a closed connection; the server keeps serving", async () => {
  const { server, address } = await startServer();
  try {
    // First request not a hello.
    const a = await RawConnection.open(address);
    a.send(7, { type: "ping" });
    await a.waitClosed();
    assert.equal(errorOf(a.response(0)).code, "PROTOCOL_ERROR");
    assert.equal(a.frames[0]!.requestId, 7);

    // A response-kind frame from a client.
    const b = await RawConnection.open(address);
    b.hello();
    b.write(frameAround(FrameKind.RESPONSE, 9, new Uint8Array([65])));
    await b.waitClosed();
    assert.equal(b.response(0).type, "helloOk");
    assert.equal(errorOf(b.response(1)).code, "PROTOCOL_ERROR");

    // A body that does not decode (unknown type tag).
    const c = await RawConnection.open(address);
    c.hello();
    c.write(frameAround(FrameKind.REQUEST, 11, new Uint8Array([99, 1, 2])));
    await c.waitClosed();
    assert.equal(errorOf(c.response(1)).code, "PROTOCOL_ERROR");
    assert.equal(c.frames[1]!.requestId, 11);

    // A second hello.
    const d = await RawConnection.open(address);
    d.hello(1);
    d.hello(2);
    await d.waitClosed();
    assert.equal(errorOf(d.response(1)).code, "PROTOCOL_ERROR");

    // A frame with a bad checksum: request id unknown, so 0.
    const e = await RawConnection.open(address);
    e.hello();
    const bad = encodeRequestFrame(5, { type: "ping" }).slice();
    bad[bad.byteLength - 1]! ^= 1;
    e.write(bad);
    await e.waitClosed();
    assert.equal(errorOf(e.response(1)).code, "CHECKSUM_MISMATCH");
    assert.equal(e.frames[1]!.requestId, 0);

    const client = await RpcClient.connect(env, address, clientOptions);
    assert.equal((await client.request({ type: "ping" })).type, "pong");
    client.close();
  } finally {
    await server.close();
  }
});

test("a corrupt record inside an intact frame is refused alone; the connection stays open", async () => {
  const { server, address } = await startServer();
  const raw = await RawConnection.open(address);
  try {
    raw.hello();
    const record = makeRecords(key, 1, 1)[0]!;
    const corrupt = record.bytes.slice();
    corrupt[corrupt.byteLength - 1]! ^= 0xff;
    raw.send(2, { type: "writeBatch", key, epochs, writerVdl: Lsn(0), records: [{ ...record, bytes: corrupt }] });
    raw.send(3, { type: "ping" });
    await raw.waitFrames(3);
    assert.equal(errorOf(raw.response(1)).code, "CHECKSUM_MISMATCH");
    assert.equal(raw.response(2).type, "pong");
    assert.ok(!raw.ended);
  } finally {
    raw.destroy();
    await server.close();
  }
});

test("a frame left incomplete past the deadline closes the connection; an idle one stays", async () => {
  const { server, address } = await startServer({ partialFrameTimeoutMs: 100 });
  try {
    const idle = await RawConnection.open(address);
    idle.hello();
    const slow = await RawConnection.open(address);
    slow.hello();
    await slow.waitFrames(1);
    const started = env.clock.nowMs();
    const frame = encodeRequestFrame(2, { type: "ping" });
    slow.write(frame.subarray(0, 3));
    await sleep(50);
    slow.write(frame.subarray(3, 9)); // progress inside the same frame does not extend its deadline
    await slow.waitClosed(2000);
    const took = env.clock.nowMs() - started;
    assert.ok(took >= 95 && took < 1500, `closed after ${took} ms`);
    assert.equal(errorOf(slow.response(1)).code, "TIMEOUT");

    await sleep(150);
    assert.ok(!idle.ended, "an idle connection is not a slow one");
    idle.send(2, { type: "ping" });
    await idle.waitFrames(2);
    assert.equal(idle.response(1).type, "pong");
    idle.destroy();
  } finally {
    await server.close();
  }
});

test("a connection that never says hello is closed after the hello timeout", async () => {
  const { server, address } = await startServer({ helloTimeoutMs: 80 });
  try {
    const raw = await RawConnection.open(address);
    await raw.waitClosed(2000);
    assert.equal(errorOf(raw.response(0)).code, "TIMEOUT");
  } finally {
    await server.close();
  }
});

test("the server refuses connections beyond maxConnections and closes all on close()", async () => {
  const { server, address } = await startServer({ maxConnections: 2 });
  const a = await RpcClient.connect(env, address, clientOptions);
  const b = await RpcClient.connect(env, address, clientOptions);
  await assert.rejects(RpcClient.connect(env, address, { ...clientOptions, connectTimeoutMs: 1000 }), isCode("CONNECTION_CLOSED"));
  assert.equal(server.connectionCount, 2);
  const closedA = deferred();
  a.onClose(() => closedA.resolve());
  await server.close();
  await closedA.promise;
  await assert.rejects(b.request({ type: "ping" }), isCode("CONNECTION_CLOSED"));
});

test("a record encoded for another segment is sent as is and refused by the server", async () => {
  const { server, address } = await startServer();
  const client = await RpcClient.connect(env, address, clientOptions);
  try {
    const foreign = encodeRecord(makeRecords(key, 1, 1)[0]!, { volumeId: VolumeId("other"), pgId: PgId(3) });
    await assert.rejects(client.request({ type: "writeBatch", key, epochs, writerVdl: Lsn(0), records: [foreign] }), isCode("CHECKSUM_MISMATCH"));
    assert.equal((await client.request({ type: "ping" })).type, "pong");
  } finally {
    client.close();
    await server.close();
  }
});
