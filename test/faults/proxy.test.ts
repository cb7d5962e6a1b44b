/**
 * The TCP fault proxy against an echo server on loopback: bytes pass unchanged and in order through
 * every delivering toxic (latency with jitter, slicing, bandwidth); a partition is silent and its
 * healing resets the connections that lost bytes; reset refuses everything.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { FaultProxy } from "../../src/faults/proxy.js";

async function echoServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port }, () => resolve(s));
    s.once("error", reject);
  });
}

/** Sends `data` and collects the echo until `n` bytes arrived, or the socket ended/errored, or the timeout. */
async function roundTrip(s: net.Socket, data: Buffer, timeoutMs: number): Promise<{ bytes: Buffer; ended: string | undefined; ms: number }> {
  const started = performance.now();
  const chunks: Buffer[] = [];
  let got = 0;
  return new Promise((resolve) => {
    const finish = (ended: string | undefined): void => {
      clearTimeout(timer);
      s.off("data", onData);
      resolve({ bytes: Buffer.concat(chunks), ended, ms: performance.now() - started });
    };
    const onData = (d: Buffer): void => {
      chunks.push(d);
      got += d.byteLength;
      if (got >= data.byteLength) finish(undefined);
    };
    const timer = setTimeout(() => finish("timeout"), timeoutMs);
    s.on("data", onData);
    s.once("close", () => finish("closed"));
    s.once("error", (e) => finish((e as NodeJS.ErrnoException).code ?? "error"));
    s.write(data);
  });
}

test("fault proxy: pass-through, latency, slicer, bandwidth keep every byte in order", { timeout: 30_000 }, async (t) => {
  const echo = await echoServer();
  const proxy = await FaultProxy.start({ target: { host: "127.0.0.1", port: echo.port } });
  t.after(async () => { await proxy.close(); await echo.close(); });
  const payload = Buffer.alloc(64 * 1024);
  for (let i = 0; i < payload.byteLength; i++) payload[i] = (i * 31) & 0xff;

  const s = await connect(proxy.port);
  let r = await roundTrip(s, payload, 5000);
  assert.equal(r.ended, undefined);
  assert.ok(r.bytes.equals(payload));

  proxy.setToxics([{ kind: "latency", ms: 40, jitterMs: 30 }]);
  r = await roundTrip(s, Buffer.from("hello"), 5000);
  assert.equal(r.bytes.toString(), "hello");
  assert.ok(r.ms >= 20, `latency applied both ways (${r.ms.toFixed(0)} ms)`);
  r = await roundTrip(s, payload, 10_000);
  assert.ok(r.bytes.equals(payload), "jitter never reorders bytes");

  proxy.setToxics([{ kind: "slicer", bytes: 7, delayMs: 0 }]);
  r = await roundTrip(s, payload.subarray(0, 5000), 10_000);
  assert.ok(r.bytes.equals(payload.subarray(0, 5000)));

  proxy.setToxics([{ kind: "bandwidth", bytesPerSecond: 100_000 }]);
  r = await roundTrip(s, payload.subarray(0, 20_000), 10_000);
  assert.ok(r.bytes.equals(payload.subarray(0, 20_000)));
  assert.ok(r.ms >= 150, `20 kB at 100 kB/s each way takes ≥ 150 ms (${r.ms.toFixed(0)} ms)`);
  proxy.clear();
  s.destroy();
});

test("fault proxy: a partition is silent; healing resets the connections that lost bytes; reset refuses", { timeout: 30_000 }, async (t) => {
  const echo = await echoServer();
  const proxy = await FaultProxy.start({ target: { host: "127.0.0.1", port: echo.port } });
  t.after(async () => { await proxy.close(); await echo.close(); });
  const s = await connect(proxy.port);
  const idle = await connect(proxy.port);
  proxy.setToxics([{ kind: "partition" }]);
  let r = await roundTrip(s, Buffer.from("lost"), 300);
  assert.equal(r.ended, "timeout");
  assert.equal(r.bytes.byteLength, 0);
  const during = await connect(proxy.port); // accepted, silent
  r = await roundTrip(during, Buffer.from("x"), 200);
  assert.equal(r.ended, "timeout");
  const closed = new Promise<void>((resolve) => s.once("close", () => resolve()));
  proxy.clear();
  await closed; // the tainted connection is reset on heal
  r = await roundTrip(idle, Buffer.from("still here"), 2000); // an idle connection lost nothing and survives
  assert.equal(r.bytes.toString(), "still here");

  proxy.setToxics([{ kind: "partition", direction: "downstream" }]);
  r = await roundTrip(idle, Buffer.from("one way"), 300);
  assert.equal(r.bytes.byteLength, 0);
  proxy.setToxics([{ kind: "reset" }]);
  // A new connection is reset at once: either connecting fails or the first exchange does.
  const outcome = await connect(proxy.port).then(
    async (fresh) => (await roundTrip(fresh, Buffer.from("x"), 2000)).ended,
    (e: NodeJS.ErrnoException) => e.code,
  );
  assert.ok(outcome !== undefined && outcome !== "timeout", `reset: ${outcome}`);
  proxy.clear();
  const after = await connect(proxy.port);
  r = await roundTrip(after, Buffer.from("healed"), 2000);
  assert.equal(r.bytes.toString(), "healed");
  after.destroy();
  during.destroy();
  assert.ok(proxy.stats().resets >= 2);
});
