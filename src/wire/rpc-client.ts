/**
 * The RPC client: one connection to one server, with the handshake done, many requests in flight and
 * typed answers. It owns request ids, pipelining, write coalescing, the client side of the in-flight
 * window, and timeouts. Reconnecting is not its business (`storage-client.ts` wraps it).
 *
 * - Requests issued in the same tick are encoded at once and written together with one
 *   `Connection.write` call in a microtask: loopback TCP moves ~146k unbatched messages/s but ~10M/s in
 *   batches (reference/sqlite-vfs.md §4), so the commit path's many small frames must share system calls.
 * - At most `min(maxInFlight, server's maxInFlight)` requests are on the wire; the rest wait here, up to
 *   `maxQueued`, beyond which `request` refuses with TOO_MANY_IN_FLIGHT (back-pressure, not growth).
 * - A request that times out is rejected with TIMEOUT but keeps its in-flight slot until the server
 *   answers it (the answer is then dropped): the server still counts it, and freeing the slot early
 *   would make the next request over the server's limit.
 * - When the connection ends for any reason, every pending and queued request is rejected with
 *   CONNECTION_CLOSED; a response that cannot be decoded or does not match its request ends the
 *   connection (nothing after it can be trusted).
 *
 * Timeouts use one timer per client, armed for the earliest deadline, rather than one per request:
 * with a uniform timeout, deadlines only grow, so the timer is re-armed about once per timeout period.
 */
import { assert } from "../core/assert.js";
import { BorealisError, isBorealisError } from "../core/errors.js";
import { formatHostPort, type HostPort, type SegmentKey } from "../core/types.js";
import type { Connection, Env, Logger, Timer } from "../env/env.js";
import { ByteReader } from "./bytes.js";
import {
  DEFAULT_MAX_FRAME_BYTES, FrameBatch, FrameDecoder, FrameKind, MAX_MAX_FRAME_BYTES, MIN_MAX_FRAME_BYTES,
  PRE_HELLO_MAX_FRAME_BYTES, type Frame,
} from "./frame.js";
import { errorFromResponse, readResponse, writeRequest, type Request, type RequestType, type Response, type ResponseFor, type Role } from "./messages.js";
import {
  DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_QUEUED, DEFAULT_REQUEST_TIMEOUT_MS,
  EXPECTED_RESPONSE, SUPPORTED_VERSIONS, nextRequestId, type PeerInfo,
} from "./rpc-common.js";

export interface RpcClientOptions {
  readonly role: Role;
  readonly senderId: string;
  /** Covers the TCP connect and the hello. Default 5 s. */
  readonly connectTimeoutMs?: number;
  /** Default for each request; `request(…, { timeoutMs })` overrides it. Default 10 s. */
  readonly requestTimeoutMs?: number;
  /** Cap on requests on the wire; the server's own limit applies too. Default 256. */
  readonly maxInFlight?: number;
  /** Requests waiting for a slot before `request` refuses more. Default 4096. */
  readonly maxQueued?: number;
  /** Largest response body this client accepts (told to the server in hello). Default 16 MiB. */
  readonly maxFrameBytes?: number;
  /** Protocol versions to offer; tests narrow it. Default: every version this build speaks. */
  readonly versions?: { readonly min: number; readonly max: number };
}

export interface RequestOptions {
  readonly timeoutMs?: number;
}

/** Every request but `hello`, which `connect` sends. */
export type ClientRequest = Exclude<Request, { readonly type: "hello" }>;

interface Pending {
  /** Allocated when the request is written (0 while queued), so ids in use are exactly those in `sent`. */
  id: number;
  readonly type: RequestType;
  /** readRecords responses are checksummed under the request's segment key. */
  readonly key: SegmentKey | undefined;
  /** The request until it is encoded into a frame batch; dropped then, so its records can be freed. */
  request: Request | null;
  readonly deadlineMs: number;
  /** Timed out: the caller has its TIMEOUT; the slot is held until the server answers. */
  abandoned: boolean;
  readonly resolve: (r: Response) => void;
  readonly reject: (e: BorealisError) => void;
}

export class RpcClient {
  private readonly log: Logger;
  private readonly decoder: FrameDecoder;
  /** Requests written (or about to be, in `batch`), by id, in the order they were sent. */
  private readonly sent = new Map<number, Pending>();
  /** Requests waiting for an in-flight slot, oldest first; `queueHead` avoids O(n) shifts. */
  private queue: Pending[] = [];
  private queueHead = 0;
  /** Frames written this tick, sent together by `flush`. */
  private readonly batch = new FrameBatch();
  private flushScheduled = false;
  private lastId = 0;
  private window = 1;
  private peerInfo: PeerInfo | null = null;
  private closedWith: BorealisError | null = null;
  private readonly closeHandlers: ((error: BorealisError) => void)[] = [];
  private timer: Timer | null = null;
  private timerAtMs = Infinity;
  private readonly flushBound = () => this.flush();
  private sentBytes = 0;
  private receivedBytes = 0;
  private readonly requestTimeoutMs: number;
  private readonly maxInFlight: number;
  private readonly maxQueued: number;

  private constructor(
    private readonly env: Env,
    readonly address: HostPort,
    private readonly connection: Connection,
    options: RpcClientOptions,
  ) {
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED;
    assert(this.requestTimeoutMs > 0 && this.maxInFlight >= 1 && this.maxQueued >= 0, "client limits are positive");
    this.log = env.log.child({ component: "rpc-client", peer: formatHostPort(address) });
    // The server is trusted more than a client is, but its first answer is still held to the pre-hello
    // limit: a confused peer on the port must not make this process allocate 16 MiB.
    this.decoder = new FrameDecoder({ maxFrameBytes: PRE_HELLO_MAX_FRAME_BYTES });
    connection.onData((chunk) => this.onData(chunk));
    connection.onClose((error) => {
      this.shutdown(new BorealisError("CONNECTION_CLOSED", `connection to ${formatHostPort(address)} closed${error ? `: ${error.message}` : ""}`, {}, { cause: error }));
    });
  }

  /** Connects and says hello; rejects with CONNECTION_CLOSED, TIMEOUT or the server's refusal. */
  static async connect(env: Env, address: HostPort, options: RpcClientOptions): Promise<RpcClient> {
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    assert(maxFrameBytes >= MIN_MAX_FRAME_BYTES && maxFrameBytes <= MAX_MAX_FRAME_BYTES, `maxFrameBytes ${maxFrameBytes} out of range`);
    const started = env.clock.nowMs();
    let connection: Connection;
    try {
      connection = await env.network.connect(address, { timeoutMs });
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      throw new BorealisError("CONNECTION_CLOSED", `connect to ${formatHostPort(address)}: ${message}`, {}, { cause: e });
    }
    const client = new RpcClient(env, address, connection, options);
    const versions = options.versions ?? SUPPORTED_VERSIONS;
    try {
      const ok = (await client.send(
        { type: "hello", minVersion: versions.min, maxVersion: versions.max, role: options.role, senderId: options.senderId, maxFrameBytes },
        Math.max(1, timeoutMs - (env.clock.nowMs() - started)),
      )) as ResponseFor["hello"];
      if (ok.version < versions.min || ok.version > versions.max || ok.maxInFlight < 1 || ok.maxFrameBytes < MIN_MAX_FRAME_BYTES) {
        throw new BorealisError("PROTOCOL_ERROR", `server answered hello with version ${ok.version}, max in flight ${ok.maxInFlight}, max frame ${ok.maxFrameBytes}`);
      }
      client.peerInfo = { nodeId: ok.nodeId, az: ok.az, version: ok.version, maxFrameBytes: ok.maxFrameBytes, maxInFlight: ok.maxInFlight };
      client.window = Math.min(client.maxInFlight, ok.maxInFlight);
      client.decoder.maxFrameBytes = maxFrameBytes;
    } catch (e) {
      client.close();
      throw e;
    }
    return client;
  }

  /** What the server said in hello. */
  get peer(): PeerInfo {
    assert(this.peerInfo !== null, "peer is known once connect has resolved");
    return this.peerInfo;
  }

  get closed(): boolean {
    return this.closedWith !== null;
  }

  /** Requests on the wire (including timed-out ones the server has not answered yet). */
  get inFlight(): number {
    return this.sent.size;
  }

  /** Bytes written to this connection so far, every frame (hello included); `/metrics` sums them. */
  get bytesSent(): number {
    return this.sentBytes;
  }

  /** Bytes read from this connection so far. */
  get bytesReceived(): number {
    return this.receivedBytes;
  }

  /** Requests waiting locally for an in-flight slot. */
  get queued(): number {
    return this.queue.length - this.queueHead;
  }

  /**
   * Sends one request. Resolves with its typed response; rejects with the server's error (as the
   * BorealisError it was), TIMEOUT, CONNECTION_CLOSED, TOO_MANY_IN_FLIGHT when the local queue is full,
   * FRAME_TOO_LARGE when the request exceeds the server's limit, INVALID_ARGUMENT when it cannot be encoded.
   */
  request<R extends ClientRequest>(req: R, options?: RequestOptions): Promise<ResponseFor[R["type"]]> {
    assert((req.type as string) !== "hello", "hello is sent by connect");
    return this.send(req, options?.timeoutMs ?? this.requestTimeoutMs) as Promise<ResponseFor[R["type"]]>;
  }

  /** Called once when the connection ends, for any reason (`close()` included). */
  onClose(handler: (error: BorealisError) => void): void {
    if (this.closedWith !== null) {
      const error = this.closedWith;
      queueMicrotask(() => handler(error));
    } else {
      this.closeHandlers.push(handler);
    }
  }

  /** Closes the connection now; pending and queued requests reject with CONNECTION_CLOSED. */
  close(): void {
    if (this.closedWith !== null) return;
    this.shutdown(new BorealisError("CONNECTION_CLOSED", `connection to ${formatHostPort(this.address)} closed by this client`));
    this.connection.destroy();
  }

  // ------------------------------------------------------------------------------------------ sending

  private send(req: Request, timeoutMs: number): Promise<Response> {
    if (this.closedWith !== null) return Promise.reject(this.closedWith);
    assert(timeoutMs > 0, "request timeout is positive");
    if (this.queue.length - this.queueHead >= this.maxQueued && this.sent.size >= this.window) {
      return Promise.reject(new BorealisError("TOO_MANY_IN_FLIGHT",
        `${this.sent.size} requests in flight and ${this.maxQueued} queued to ${formatHostPort(this.address)}`));
    }
    const deadlineMs = this.env.clock.nowMs() + timeoutMs;
    return new Promise<Response>((resolve, reject) => {
      const p: Pending = {
        id: 0, type: req.type, key: req.type === "readRecords" ? req.key : undefined,
        request: req, deadlineMs, abandoned: false, resolve, reject,
      };
      if (this.sent.size < this.window) this.transmit(p);
      else this.queue.push(p);
      if (deadlineMs < this.timerAtMs) this.armTimer(deadlineMs);
    });
  }

  private allocateId(): number {
    let id = nextRequestId(this.lastId);
    // Ids wrap after 2^32 requests; skip any still awaiting an answer (at most window + queue of them).
    while (this.sent.has(id)) id = nextRequestId(id);
    this.lastId = id;
    return id;
  }

  /**
   * Encodes the request into this tick's batch and counts it in flight. A request that cannot be encoded,
   * or exceeds the server's frame limit, is rejected here (INVALID_ARGUMENT, FRAME_TOO_LARGE) and never
   * leaves this process.
   */
  private transmit(p: Pending): void {
    const req = p.request;
    assert(req !== null && p.id === 0, "a request is written once");
    const id = this.allocateId();
    const limit = this.peerInfo?.maxFrameBytes ?? PRE_HELLO_MAX_FRAME_BYTES;
    try {
      this.batch.append(FrameKind.REQUEST, id, limit, (w) => writeRequest(w, req));
    } catch (e) {
      p.reject(isBorealisError(e) ? e
        : new BorealisError("INVALID_ARGUMENT", `cannot encode ${req.type}: ${e instanceof Error ? e.message : String(e)}`, {}, { cause: e }));
      return;
    }
    p.id = id;
    p.request = null;
    this.sent.set(id, p);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushBound);
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const bytes = this.batch.take();
    if (this.closedWith !== null || bytes === null) return;
    // Back-pressure needs no handling here: the window bounds what can be written but not yet read.
    this.sentBytes += bytes.byteLength;
    this.connection.write(bytes);
  }

  /** Moves queued requests onto the wire while the window has room. */
  private pump(): void {
    while (this.sent.size < this.window && this.queueHead < this.queue.length) {
      const p = this.queue[this.queueHead]!;
      this.queue[this.queueHead++] = undefined as unknown as Pending;
      this.transmit(p);
    }
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  // ---------------------------------------------------------------------------------------- receiving

  private onData(chunk: Uint8Array): void {
    if (this.closedWith !== null) return;
    this.receivedBytes += chunk.byteLength;
    try {
      this.decoder.push(chunk, (frame) => this.onFrame(frame));
    } catch (e) {
      this.fail(e);
    }
    if (this.closedWith === null) this.pump();
  }

  private onFrame(frame: Frame): void {
    if (this.closedWith !== null) return;
    if (frame.kind !== FrameKind.RESPONSE) throw new BorealisError("PROTOCOL_ERROR", "the server sent a request frame");
    const p = this.sent.get(frame.requestId);
    if (p === undefined) {
      if (frame.requestId === 0) {
        // The server could not read something we sent and is about to close: say what it said.
        const response = readResponse(new ByteReader(frame.message), frame.message);
        const said = response.type === "error" ? `${response.code}: ${response.message}` : response.type;
        throw new BorealisError("PROTOCOL_ERROR", `server closed the connection: ${said}`);
      }
      throw new BorealisError("PROTOCOL_ERROR", `response to unknown request ${frame.requestId}`);
    }
    this.sent.delete(p.id);
    let response: Response;
    try {
      response = readResponse(new ByteReader(frame.message), frame.message, p.key);
    } catch (e) {
      // The caller is no longer in `sent`, so `shutdown` would not reach it: tell it here.
      if (!p.abandoned) p.reject(new BorealisError("PROTOCOL_ERROR", `cannot decode the answer to ${p.type}: ${e instanceof Error ? e.message : String(e)}`, {}, { cause: e }));
      throw e;
    }
    if (response.type !== "error" && response.type !== EXPECTED_RESPONSE[p.type]) {
      const e = new BorealisError("PROTOCOL_ERROR", `server answered ${p.type} with ${response.type}`);
      if (!p.abandoned) p.reject(e);
      throw e;
    }
    if (p.abandoned) return;
    if (response.type === "error") p.reject(errorFromResponse(response));
    else p.resolve(response);
  }

  /** A broken stream: close, and tell every waiting caller (the cause is in the message). */
  private fail(e: unknown): void {
    const message = e instanceof Error ? e.message : String(e);
    this.log.warn("rpc-client-protocol-error", { message });
    this.shutdown(new BorealisError("CONNECTION_CLOSED", `connection to ${formatHostPort(this.address)} closed: ${message}`, {}, { cause: e }));
    this.connection.destroy();
  }

  private shutdown(reason: BorealisError): void {
    if (this.closedWith !== null) return;
    this.closedWith = reason;
    this.timer?.cancel();
    this.timer = null;
    this.timerAtMs = Infinity;
    this.batch.take();
    const waiting = [...this.sent.values(), ...this.queue.slice(this.queueHead)];
    this.sent.clear();
    this.queue = [];
    this.queueHead = 0;
    for (const p of waiting) if (!p.abandoned) p.reject(reason);
    for (const h of this.closeHandlers.splice(0)) h(reason);
  }

  // ----------------------------------------------------------------------------------------- timeouts

  private armTimer(atMs: number): void {
    this.timer?.cancel();
    this.timerAtMs = atMs;
    this.timer = this.env.clock.setTimer(Math.max(1, atMs - this.env.clock.nowMs()), () => this.expire());
  }

  /** Rejects every request past its deadline, then re-arms for the earliest remaining one. */
  private expire(): void {
    this.timer = null;
    this.timerAtMs = Infinity;
    if (this.closedWith !== null) return;
    const now = this.env.clock.nowMs();
    let next = Infinity;
    for (const p of this.sent.values()) {
      if (p.abandoned) continue;
      if (p.deadlineMs <= now) {
        p.abandoned = true;
        p.reject(timeoutError(p, this.address));
      } else if (p.deadlineMs < next) {
        next = p.deadlineMs;
      }
    }
    if (this.queueHead < this.queue.length) {
      const kept: Pending[] = [];
      for (let i = this.queueHead; i < this.queue.length; i++) {
        const p = this.queue[i]!;
        if (p.deadlineMs <= now) {
          p.reject(timeoutError(p, this.address));
        } else {
          kept.push(p);
          if (p.deadlineMs < next) next = p.deadlineMs;
        }
      }
      this.queue = kept;
      this.queueHead = 0;
    }
    if (next !== Infinity) this.armTimer(next);
  }
}

function timeoutError(p: Pending, address: HostPort): BorealisError {
  return new BorealisError("TIMEOUT", `${p.type} to ${formatHostPort(address)} timed out`, { requestId: p.id });
}
