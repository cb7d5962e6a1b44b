/**
 * Shared fixtures for the wire tests: fast-check arbitraries for every message, a trivial handler
 * standing in for a storage node, a raw frame-level connection for speaking to a server without the
 * client's manners, and a Network wrapper that counts writes.
 */
import fc from "fast-check";
import { ErrorCodes, BorealisError, type ErrorCode } from "../../src/core/errors.js";
import { Epoch, Lsn, PageNo, PgId, VolumeId, type HostPort, type SegmentKey } from "../../src/core/types.js";
import type { Connection, Env, Listener, Network } from "../../src/env/env.js";
import { realEnv, silentLogger } from "../../src/env/real.js";
import { ByteReader } from "../../src/wire/bytes.js";
import { FrameDecoder, encodeFrame, encodeRequestFrame, FrameKind, type Frame } from "../../src/wire/frame.js";
import { readResponse, type Request, type Response, type SegmentGeometry, type SegmentState } from "../../src/wire/messages.js";
import { RecordFlag, encodeRecord, type EncodedRecord, type RedoRecord } from "../../src/wire/record.js";
import { RpcServer, type RpcHandler, type RpcServerOptions } from "../../src/wire/rpc-server.js";

export const env: Env = realEnv({ log: silentLogger });
export const LOCALHOST: HostPort = { host: "127.0.0.1", port: 0 };

// ------------------------------------------------------------------------------------- arbitraries

const MAX_LSN = Number.MAX_SAFE_INTEGER;
// Small values too, not just the uniform spread: the smallest encodings are where count-vs-size
// sanity checks go wrong (a segment state can be 12 bytes).
export const arbText = fc.oneof(fc.constant(""), fc.string({ unit: "binary", maxLength: 24 }));
export const arbNat = fc.oneof(fc.integer({ min: 0, max: 127 }), fc.maxSafeNat());
export const arbKey: fc.Arbitrary<SegmentKey> = fc.record({ volumeId: arbText.map(VolumeId), pgId: arbNat.map(PgId) });
export const arbEpochs = fc.record({ volumeEpoch: arbNat.map(Epoch), membershipEpoch: arbNat.map(Epoch) });
export const arbGeometry: fc.Arbitrary<SegmentGeometry> = fc.record({
  volumeId: arbText.map(VolumeId), pgId: arbNat.map(PgId), firstPage: arbNat.map(PageNo),
  pageCount: arbNat, pageSize: arbNat,
});
export const arbState: fc.Arbitrary<SegmentState> = fc.record({
  geometry: arbGeometry, epochs: arbEpochs, scl: arbNat.map(Lsn), highestLsn: arbNat.map(Lsn),
  knownVdl: arbNat.map(Lsn), materializedLsn: arbNat.map(Lsn), retentionLsn: arbNat.map(Lsn),
  highestPageNo: arbNat.map(PageNo),
});
export const arbAnnulments = fc.array(fc.record({ epoch: arbNat.map(Epoch), aboveLsn: arbNat.map(Lsn) }), { maxLength: 5 });

export const arbRedoRecord: fc.Arbitrary<RedoRecord> = fc.integer({ min: 1, max: MAX_LSN }).chain((lsn) => fc.record({
  lsn: fc.constant(Lsn(lsn)),
  prevLsnInSegment: fc.integer({ min: 0, max: lsn - 1 }).map(Lsn),
  prevLsnOfPage: fc.integer({ min: 0, max: lsn - 1 }).map(Lsn),
  prevLsnInVolume: fc.integer({ min: 0, max: lsn - 1 }).map(Lsn),
  epoch: arbNat.map(Epoch),
  pageNo: fc.integer({ min: 1, max: MAX_LSN }).map(PageNo),
  flags: fc.constantFrom(0, RecordFlag.CPL, RecordFlag.FULL_IMAGE, RecordFlag.CPL | RecordFlag.FULL_IMAGE),
  payload: fc.uint8Array({ maxLength: 64 }),
}));

/** Records for `key`: pre-encoded (as received or built by the writer) or not yet (encoded on write). */
export function arbRecordsFor(key: SegmentKey): fc.Arbitrary<EncodedRecord[]> {
  return fc.array(fc.tuple(arbRedoRecord, fc.boolean()).map(([r, pre]) => pre ? encodeRecord(r, key) : { ...r, bytes: new Uint8Array(0) }), { maxLength: 6 });
}

const arbErrorCode = fc.constantFrom(...(Object.keys(ErrorCodes) as ErrorCode[]));
const arbDetails = fc.dictionary(arbText.filter((k) => k !== "__proto__"), fc.oneof(fc.integer(), arbText, fc.boolean()), { maxKeys: 4 });

export const arbRequest: fc.Arbitrary<Request> = fc.oneof(
  fc.record({
    type: fc.constant("hello" as const), minVersion: arbNat, maxVersion: arbNat,
    role: fc.constantFrom("writer" as const, "peer" as const, "admin" as const), senderId: arbText, maxFrameBytes: arbNat,
  }),
  fc.constant({ type: "ping" as const }),
  fc.constant({ type: "nodeStatus" as const }),
  fc.record({ type: fc.constant("openSegment" as const), geometry: arbGeometry, epochs: arbEpochs }),
  arbKey.chain((key) => fc.record({
    type: fc.constant("writeBatch" as const), key: fc.constant(key), epochs: arbEpochs, writerVdl: arbNat.map(Lsn), records: arbRecordsFor(key),
  })),
  fc.record({ type: fc.constant("getPage" as const), key: arbKey, epochs: arbEpochs, pageNo: arbNat.map(PageNo), readPoint: arbNat.map(Lsn), minScl: arbNat.map(Lsn) }),
  fc.record({ type: fc.constant("getSegmentState" as const), key: arbKey, epochs: arbEpochs }),
  fc.record({ type: fc.constant("setEpoch" as const), key: arbKey, epochs: arbEpochs, annulments: arbAnnulments }),
  fc.record({
    type: fc.constant("readRecords" as const), key: arbKey, epochs: arbEpochs, afterLsn: arbNat.map(Lsn),
    upToLsn: arbNat.map(Lsn), maxBytes: arbNat,
  }),
  fc.record({ type: fc.constant("annul" as const), key: arbKey, epochs: arbEpochs, annulments: arbAnnulments }),
);

/** A response with the segment key its records (if any) are checksummed under. */
export const arbResponse: fc.Arbitrary<{ response: Response; key: SegmentKey }> = arbKey.chain((key) => fc.record({
  key: fc.constant(key),
  response: fc.oneof(
    fc.record({
      type: fc.constant("helloOk" as const), version: arbNat, nodeId: arbText, az: arbText, maxFrameBytes: arbNat, maxInFlight: arbNat,
    }),
    fc.constant({ type: "pong" as const }),
    fc.record({ type: fc.constant("nodeStatus" as const), nodeId: arbText, az: arbText, fenced: fc.boolean(), segments: fc.array(arbState, { maxLength: 4 }) }),
    fc.record({ type: fc.constant("writeAck" as const), scl: arbNat.map(Lsn) }),
    fc.record({ type: fc.constant("page" as const), pageLsn: arbNat.map(Lsn), bytes: fc.uint8Array({ maxLength: 256 }) }),
    fc.record({ type: fc.constant("segmentState" as const), state: arbState }),
    fc.record({ type: fc.constant("records" as const), scl: arbNat.map(Lsn), more: fc.boolean(), records: arbRecordsFor(key) }),
    fc.record({ type: fc.constant("error" as const), code: arbErrorCode, message: arbText, details: arbDetails }),
  ),
}));

/**
 * Deep copy with byte arrays as plain arrays and encoded records reduced to their fields, so that a
 * decoded message (views into a frame, Buffers, records carrying their bytes) compares equal to the one
 * that was encoded.
 */
export function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return [...value];
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (!(k === "bytes" && "lsn" in value)) out[k] = plain(v);
    return out;
  }
  return value;
}

// ------------------------------------------------------------------------------- a trivial handler

export function makeRecords(key: SegmentKey, fromLsn: number, count: number, payloadBytes = 32): EncodedRecord[] {
  const out: EncodedRecord[] = [];
  for (let i = 0; i < count; i++) {
    const lsn = fromLsn + i;
    out.push(encodeRecord({
      lsn: Lsn(lsn), epoch: Epoch(1), pageNo: PageNo(1 + (lsn % 100)), prevLsnInSegment: Lsn(lsn - 1),
      prevLsnOfPage: Lsn(0), prevLsnInVolume: Lsn(lsn - 1), flags: i === count - 1 ? RecordFlag.CPL : 0,
      payload: new Uint8Array(payloadBytes).fill(lsn & 0xff),
    }, key));
  }
  return out;
}

const state = (key: SegmentKey, scl = 0): SegmentState => ({
  geometry: { volumeId: key.volumeId, pgId: key.pgId, firstPage: PageNo(1), pageCount: 100, pageSize: 4096 },
  epochs: { volumeEpoch: Epoch(1), membershipEpoch: Epoch(1) },
  scl: Lsn(scl), highestLsn: Lsn(scl), knownVdl: Lsn(0), materializedLsn: Lsn(0), retentionLsn: Lsn(0),
  highestPageNo: PageNo(0),
});

/**
 * Answers everything at once: pong; writeAck with the last record's LSN; a page whose bytes spell the
 * page number; records (afterLsn, upToLsn] built under the request's key; segment states.
 */
export const echoHandler: RpcHandler = async (req) => {
  switch (req.type) {
    case "ping": return { type: "pong" };
    case "nodeStatus": return { type: "nodeStatus", nodeId: "n1", az: "az-a", fenced: false, segments: [state({ volumeId: VolumeId("v"), pgId: PgId(0) })] };
    case "writeBatch": return { type: "writeAck", scl: req.records.length > 0 ? req.records[req.records.length - 1]!.lsn : Lsn(0) };
    case "getPage": return { type: "page", pageLsn: req.readPoint, bytes: new TextEncoder().encode(`page ${req.pageNo}`) };
    case "readRecords": {
      const count = Math.max(0, Math.min(50, req.upToLsn - req.afterLsn));
      return { type: "records", scl: req.upToLsn, more: false, records: makeRecords(req.key, req.afterLsn + 1, count) };
    }
    case "openSegment": return { type: "segmentState", state: { ...state(req.geometry), geometry: req.geometry } };
    case "getSegmentState":
    case "setEpoch":
    case "annul": return { type: "segmentState", state: state(req.key, 7) };
  }
};

export async function startServer(options: Partial<RpcServerOptions> = {}, address: HostPort = LOCALHOST, serverEnv: Env = env): Promise<{ server: RpcServer; address: HostPort }> {
  const server = new RpcServer(serverEnv, { nodeId: "n1", az: "az-a", handler: echoHandler, ...options });
  const bound = await server.listen(address);
  return { server, address: bound };
}

// ------------------------------------------------------------------------------ a raw connection

/** Speaks frames to a server without RpcClient's rules: for testing what the server does with rudeness. */
export class RawConnection {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  decodeError: Error | null = null;
  private isClosed = false;
  private waiters: (() => void)[] = [];
  private readonly decoder = new FrameDecoder({ maxFrameBytes: 64 * 1024 * 1024 });

  private constructor(readonly connection: Connection) {
    connection.onData((chunk) => {
      try {
        this.decoder.push(chunk, (f) => this.frames.push(f));
      } catch (e) {
        this.decodeError = e as Error;
      }
      this.wake();
    });
    this.closed = new Promise((resolve) => connection.onClose(() => {
      this.isClosed = true;
      this.wake();
      resolve();
    }));
  }

  static async open(address: HostPort): Promise<RawConnection> {
    return new RawConnection(await env.network.connect(address, { timeoutMs: 2000 }));
  }

  get ended(): boolean {
    return this.isClosed;
  }

  write(bytes: Uint8Array | readonly Uint8Array[]): void {
    this.connection.write(bytes);
  }

  send(requestId: number, request: Request): void {
    this.write(encodeRequestFrame(requestId, request));
  }

  hello(requestId = 1, maxFrameBytes = 16 * 1024 * 1024): void {
    this.send(requestId, { type: "hello", minVersion: 1, maxVersion: 1, role: "admin", senderId: "raw", maxFrameBytes });
  }

  /** Resolves once `n` frames arrived or the connection ended; rejects after `timeoutMs`. */
  async waitFrames(n: number, timeoutMs = 2000): Promise<Frame[]> {
    const deadline = env.clock.nowMs() + timeoutMs;
    while (this.frames.length < n && !this.isClosed) {
      const left = deadline - env.clock.nowMs();
      if (left <= 0) throw new Error(`waited ${timeoutMs} ms for ${n} frames, got ${this.frames.length}`);
      await new Promise<void>((resolve) => {
        const t = env.clock.setTimer(left, resolve);
        this.waiters.push(() => { t.cancel(); resolve(); });
      });
    }
    return this.frames;
  }

  async waitClosed(timeoutMs = 2000): Promise<void> {
    const t = new Promise<never>((_, reject) => env.clock.setTimer(timeoutMs, () => reject(new Error(`not closed after ${timeoutMs} ms`))));
    t.catch(() => {});
    await Promise.race([this.closed, t]);
  }

  response(i: number, key?: SegmentKey): Response {
    const f = this.frames[i];
    if (f === undefined) throw new Error(`no frame ${i}`);
    return readResponse(new ByteReader(f.message), f.message, key);
  }

  destroy(): void {
    this.connection.destroy();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** A frame with the right length and checksum around any body bytes. */
export function frameAround(kind: number, requestId: number, message: Uint8Array): Uint8Array {
  return encodeFrame(kind as FrameKind, requestId, message.byteLength, (w) => w.bytes(message));
}

// ------------------------------------------------------------------------------ counting network

export interface WriteCounts {
  /** Connection.write calls made by the side that listened (the server). */
  serverWrites: number;
  /** Chunks the server received. */
  serverChunks: number;
  /** Connection.write calls made by the side that connected (the client). */
  clientWrites: number;
}

/** Wraps a network so that tests can count system-call-level writes on each side. */
export function countingEnv(inner: Env): { env: Env; counts: WriteCounts } {
  const counts: WriteCounts = { serverWrites: 0, serverChunks: 0, clientWrites: 0 };
  const wrap = (c: Connection, side: "server" | "client"): Connection => ({
    remote: c.remote,
    write(chunks) {
      if (side === "server") counts.serverWrites++;
      else counts.clientWrites++;
      return c.write(chunks);
    },
    onData(h) {
      c.onData((b) => {
        if (side === "server") counts.serverChunks++;
        h(b);
      });
    },
    onClose: (h) => c.onClose(h),
    onDrain: (h) => c.onDrain(h),
    destroy: (e) => c.destroy(e),
  });
  const network: Network = {
    listen: (address, onConnection): Promise<Listener> => inner.network.listen(address, (c) => onConnection(wrap(c, "server"))),
    connect: async (address, options) => wrap(await inner.network.connect(address, options), "client"),
  };
  return { env: { ...inner, network }, counts };
}

export function isCode(code: ErrorCode): (e: unknown) => boolean {
  return (e) => e instanceof BorealisError && e.code === code;
}

/** A promise and its resolver, for handlers that wait until the test says so. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}

export function sleep(ms: number): Promise<void> {
  return env.clock.sleep(ms);
}
