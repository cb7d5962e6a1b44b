/**
 * The RPC server: accepts connections on `Env.network`, frames them, holds the handshake and hands each
 * request to one handler (the storage node's, in production). It owns the conversation rules of
 * docs/wire-protocol.md — hello first, limits, in-flight bound, what is answered and what closes the
 * connection — and nothing about storage.
 *
 * Per connection:
 * - The first frame must be a `hello` request, at most PRE_HELLO_MAX_FRAME_BYTES long, within the hello
 *   timeout. The server picks the highest version both sides speak and answers `helloOk`; only then are
 *   frames up to `maxFrameBytes` accepted.
 * - Requests run concurrently and are answered in completion order (the request id pairs them up). At
 *   most `maxInFlight` run at once; one more is answered TOO_MANY_IN_FLIGHT at once, without running it,
 *   so a client that ignores its window gets told instead of queueing work here.
 * - Responses produced in the same tick are written with one `Connection.write` call (one system call).
 * - Anything that breaks the stream (a bad frame, a body that does not decode, a response-kind frame, a
 *   second hello) is answered with an error response — request id 0 when the id is unknown — and the
 *   connection is closed. The server and its other connections carry on.
 * - A frame that has started to arrive must complete within `partialFrameTimeoutMs` of the previous
 *   frame (slowloris); a connection that has said hello may otherwise idle for ever.
 *
 * A handler that fails an `assert` has found a broken invariant: its AssertionError is not turned into a
 * response but rethrown, so the process stops (src/core/assert.ts).
 */
import { AssertionError, assert } from "../core/assert.js";
import { BorealisError, isBorealisError, type ErrorCode } from "../core/errors.js";
import type { HostPort, SegmentKey } from "../core/types.js";
import type { Connection, Env, Listener, Logger, Timer } from "../env/env.js";
import { ByteReader } from "./bytes.js";
import {
  DEFAULT_MAX_FRAME_BYTES, FrameBatch, FrameDecoder, FrameKind, MAX_MAX_FRAME_BYTES, MIN_MAX_FRAME_BYTES,
  PRE_HELLO_MAX_FRAME_BYTES, type Frame,
} from "./frame.js";
import { errorResponse, readRequest, writeResponse, type Request, type Response, type Role } from "./messages.js";
import {
  DEFAULT_HELLO_TIMEOUT_MS, DEFAULT_MAX_BUFFERED_OUTPUT_BYTES, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_PARTIAL_FRAME_TIMEOUT_MS, EXPECTED_RESPONSE, SUPPORTED_VERSIONS,
} from "./rpc-common.js";

/** Who is asking: what the connection's hello said. */
export interface RpcContext {
  readonly role: Role;
  readonly senderId: string;
  /** The negotiated protocol version. */
  readonly version: number;
  /** The peer's address, for logs. */
  readonly remote: string;
}

/** Every request but `hello`, which the server answers itself. */
export type ServedRequest = Exclude<Request, { readonly type: "hello" }>;

/**
 * Answers one request. Resolve with the response whose type `EXPECTED_RESPONSE` names (or an `error`
 * response); a thrown or rejected BorealisError becomes an error response with its code, any other
 * error an INTERNAL one. Never called with `hello`.
 */
export type RpcHandler = (request: ServedRequest, context: RpcContext) => Promise<Response>;

export interface RpcServerOptions {
  readonly nodeId: string;
  readonly az: string;
  readonly handler: RpcHandler;
  /** Largest request body accepted after hello. Default 16 MiB. */
  readonly maxFrameBytes?: number;
  /** Largest frame accepted before hello. Default 64 KiB. */
  readonly preHelloMaxFrameBytes?: number;
  /** Requests run at once per connection. Default 256. */
  readonly maxInFlight?: number;
  /** Deadline for a frame that has started to arrive. Default 30 s. */
  readonly partialFrameTimeoutMs?: number;
  /** Deadline for a new connection's hello. Default 30 s. */
  readonly helloTimeoutMs?: number;
  /** Connections held at once; more are closed on accept. Default 1024. */
  readonly maxConnections?: number;
  /** Bytes written to a peer that is not reading before it is disconnected. Default 64 MiB. */
  readonly maxBufferedOutputBytes?: number;
  /** Protocol versions to accept; tests narrow it. Default: every version this build speaks. */
  readonly versions?: { readonly min: number; readonly max: number };
}

interface Settings {
  readonly nodeId: string;
  readonly az: string;
  readonly handler: RpcHandler;
  readonly maxFrameBytes: number;
  readonly preHelloMaxFrameBytes: number;
  readonly maxInFlight: number;
  readonly partialFrameTimeoutMs: number;
  readonly helloTimeoutMs: number;
  readonly maxConnections: number;
  readonly maxBufferedOutputBytes: number;
  readonly versions: { readonly min: number; readonly max: number };
}

export class RpcServer {
  private readonly settings: Settings;
  private readonly log: Logger;
  private listener: Listener | null = null;
  private readonly connections = new Set<ServerConnection>();
  private closing = false;

  constructor(private readonly env: Env, options: RpcServerOptions) {
    const s: Settings = {
      nodeId: options.nodeId,
      az: options.az,
      handler: options.handler,
      maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      preHelloMaxFrameBytes: options.preHelloMaxFrameBytes ?? PRE_HELLO_MAX_FRAME_BYTES,
      maxInFlight: options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
      partialFrameTimeoutMs: options.partialFrameTimeoutMs ?? DEFAULT_PARTIAL_FRAME_TIMEOUT_MS,
      helloTimeoutMs: options.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS,
      maxConnections: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
      maxBufferedOutputBytes: options.maxBufferedOutputBytes ?? DEFAULT_MAX_BUFFERED_OUTPUT_BYTES,
      versions: options.versions ?? SUPPORTED_VERSIONS,
    };
    assert(s.maxFrameBytes >= MIN_MAX_FRAME_BYTES && s.maxFrameBytes <= MAX_MAX_FRAME_BYTES, `maxFrameBytes ${s.maxFrameBytes} out of range`);
    assert(s.preHelloMaxFrameBytes >= MIN_MAX_FRAME_BYTES && s.preHelloMaxFrameBytes <= s.maxFrameBytes, "preHelloMaxFrameBytes in [MIN_MAX_FRAME_BYTES, maxFrameBytes]");
    assert(Number.isSafeInteger(s.maxInFlight) && s.maxInFlight >= 1, "maxInFlight ≥ 1");
    assert(s.partialFrameTimeoutMs > 0 && s.helloTimeoutMs > 0, "timeouts are positive");
    assert(s.maxConnections >= 1 && s.maxBufferedOutputBytes >= s.maxFrameBytes, "maxBufferedOutputBytes ≥ maxFrameBytes");
    assert(s.versions.min >= 1 && s.versions.min <= s.versions.max, "version range is not empty");
    this.settings = s;
    this.log = env.log.child({ component: "rpc-server", node: options.nodeId });
  }

  /** Starts accepting connections; resolves with the address bound (port 0 picks a free one). */
  async listen(address: HostPort): Promise<HostPort> {
    assert(this.listener === null && !this.closing, "listen is called once, before close");
    this.listener = await this.env.network.listen(address, (c) => this.accept(c));
    this.log.info("rpc-listening", { address: this.listener.address });
    return this.listener.address;
  }

  get address(): HostPort | undefined {
    return this.listener?.address;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Stops listening and closes every connection; handlers still running finish, their answers are dropped. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const stopped = this.listener?.close();
    for (const c of [...this.connections]) c.close("server closing");
    await stopped;
  }

  private accept(connection: Connection): void {
    if (this.closing) {
      connection.destroy();
      return;
    }
    if (this.connections.size >= this.settings.maxConnections) {
      this.log.warn("rpc-connection-refused", { remote: connection.remote, reason: "too many connections", limit: this.settings.maxConnections });
      connection.destroy();
      return;
    }
    const c = new ServerConnection(this.env, this.settings, this.log, connection, () => this.connections.delete(c));
    this.connections.add(c);
  }
}

/** Errors that describe a broken stream keep their code in the response; everything else is PROTOCOL_ERROR. */
const STREAM_ERROR_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["PROTOCOL_ERROR", "FRAME_TOO_LARGE", "CHECKSUM_MISMATCH", "UNSUPPORTED_VERSION", "TIMEOUT"]);

class ServerConnection {
  private state: "hello" | "ready" | "closed" = "hello";
  private context: RpcContext | null = null;
  /** The largest response body the client accepts (its hello says). */
  private clientMaxFrameBytes = MIN_MAX_FRAME_BYTES;
  private readonly decoder: FrameDecoder;
  private inFlight = 0;
  /** Responses produced this tick, written together by `flush`. */
  private readonly batch = new FrameBatch();
  private flushScheduled = false;
  /** Bytes written since a write last reported back-pressure; -1 while the peer keeps up. */
  private blockedBytes = -1;
  /** When the incomplete frame now held started (-1: none), and the timer that enforces the deadline. */
  private partialSinceMs = -1;
  private partialTimer: Timer | null = null;
  private helloTimer: Timer | null;
  private readonly flushBound = () => this.flush();

  constructor(
    private readonly env: Env,
    private readonly settings: Settings,
    private readonly log: Logger,
    private readonly connection: Connection,
    private readonly onGone: () => void,
  ) {
    this.decoder = new FrameDecoder({ maxFrameBytes: settings.preHelloMaxFrameBytes });
    this.helloTimer = env.clock.setTimer(settings.helloTimeoutMs, () => {
      this.helloTimer = null;
      if (this.state === "hello") this.fail(new BorealisError("TIMEOUT", `no hello within ${settings.helloTimeoutMs} ms`), 0);
    });
    connection.onData((chunk) => this.onData(chunk));
    connection.onDrain(() => { this.blockedBytes = -1; });
    connection.onClose((error) => {
      if (this.state !== "closed") {
        this.log.debug("rpc-connection-ended", { remote: connection.remote, error });
        this.teardown();
      }
    });
  }

  /** Closes the connection without a word (server shutdown). */
  close(reason: string): void {
    if (this.state === "closed") return;
    this.log.debug("rpc-connection-closing", { remote: this.connection.remote, reason });
    this.teardown();
    this.connection.destroy();
  }

  private isClosed(): boolean {
    return this.state === "closed";
  }

  private teardown(): void {
    this.state = "closed";
    this.helloTimer?.cancel();
    this.helloTimer = null;
    this.partialTimer?.cancel();
    this.partialTimer = null;
    this.batch.take();
    this.onGone();
  }

  // ------------------------------------------------------------------------------------------ input

  private onData(chunk: Uint8Array): void {
    if (this.state === "closed") return;
    let frames = 0;
    try {
      this.decoder.push(chunk, (frame) => {
        frames++;
        this.onFrame(frame);
      });
    } catch (e) {
      this.fail(e, 0);
      return;
    }
    // onFrame may have closed the connection (the compiler cannot see through the callback).
    if (!this.isClosed()) this.trackPartialFrame(frames > 0);
  }

  /**
   * Slowloris deadline: the frame now held incomplete must finish within `partialFrameTimeoutMs` of the
   * moment it started (the end of the previous frame). One timer per connection, re-armed lazily, so a
   * busy connection whose chunks end mid-frame costs a clock read per chunk, not a timer.
   */
  private trackPartialFrame(completedAFrame: boolean): void {
    if (!this.decoder.hasPartialFrame) {
      this.partialSinceMs = -1;
      return;
    }
    if (completedAFrame || this.partialSinceMs < 0) this.partialSinceMs = this.env.clock.nowMs();
    if (this.partialTimer === null) this.armPartialTimer(this.settings.partialFrameTimeoutMs);
  }

  private armPartialTimer(ms: number): void {
    this.partialTimer = this.env.clock.setTimer(ms, () => {
      this.partialTimer = null;
      if (this.state === "closed" || this.partialSinceMs < 0) return;
      const elapsed = this.env.clock.nowMs() - this.partialSinceMs;
      const limit = this.settings.partialFrameTimeoutMs;
      if (elapsed >= limit) {
        this.fail(new BorealisError("TIMEOUT", `frame incomplete after ${Math.round(elapsed)} ms (${this.decoder.bufferedBytes} bytes held)`), 0);
      } else {
        this.armPartialTimer(limit - elapsed);
      }
    });
  }

  private onFrame(frame: Frame): void {
    if (this.state === "closed") return;
    if (frame.kind !== FrameKind.REQUEST) {
      this.fail(new BorealisError("PROTOCOL_ERROR", "a client sent a response frame"), frame.requestId);
      return;
    }
    let request: Request;
    try {
      request = readRequest(new ByteReader(frame.message), frame.message);
    } catch (e) {
      if (isBorealisError(e, "CHECKSUM_MISMATCH") && this.state === "ready") {
        // A record inside an intact frame failed its own checksum: the stream is still in sync, only
        // this request is refused (the writer resends; invariant 9 says never apply it). Before hello
        // nothing but a hello is acceptable, so there it closes the connection like any bad frame.
        this.send(frame.requestId, errorResponse(e), undefined);
        return;
      }
      this.fail(e, frame.requestId);
      return;
    }
    if (this.state === "hello") {
      if (request.type !== "hello") {
        this.fail(new BorealisError("PROTOCOL_ERROR", `expected hello, got ${request.type}`), frame.requestId);
        return;
      }
      this.hello(frame.requestId, request);
      return;
    }
    if (request.type === "hello") {
      this.fail(new BorealisError("PROTOCOL_ERROR", "hello sent twice"), frame.requestId);
      return;
    }
    if (this.inFlight >= this.settings.maxInFlight) {
      this.send(frame.requestId, errorResponse(new BorealisError("TOO_MANY_IN_FLIGHT", `more than ${this.settings.maxInFlight} requests in flight`)), undefined);
      return;
    }
    this.run(frame.requestId, request);
  }

  private hello(requestId: number, m: Extract<Request, { type: "hello" }>): void {
    const { versions } = this.settings;
    const version = Math.min(m.maxVersion, versions.max);
    if (m.minVersion > m.maxVersion || version < Math.max(m.minVersion, versions.min)) {
      this.fail(new BorealisError("UNSUPPORTED_VERSION",
        `client speaks versions ${m.minVersion}..${m.maxVersion}, this server ${versions.min}..${versions.max}`,
        { min: versions.min, max: versions.max }), requestId);
      return;
    }
    if (m.maxFrameBytes < MIN_MAX_FRAME_BYTES) {
      this.fail(new BorealisError("PROTOCOL_ERROR", `hello: max frame bytes ${m.maxFrameBytes} is below ${MIN_MAX_FRAME_BYTES}`), requestId);
      return;
    }
    this.helloTimer?.cancel();
    this.helloTimer = null;
    this.clientMaxFrameBytes = Math.min(m.maxFrameBytes, MAX_MAX_FRAME_BYTES);
    this.context = { role: m.role, senderId: m.senderId, version, remote: this.connection.remote };
    this.state = "ready";
    this.decoder.maxFrameBytes = this.settings.maxFrameBytes;
    this.log.debug("rpc-hello", { remote: this.connection.remote, role: m.role, sender: m.senderId, version });
    this.send(requestId, {
      type: "helloOk", version, nodeId: this.settings.nodeId, az: this.settings.az,
      maxFrameBytes: this.settings.maxFrameBytes, maxInFlight: this.settings.maxInFlight,
    }, undefined);
  }

  // ------------------------------------------------------------------------------------- dispatching

  private run(requestId: number, request: ServedRequest): void {
    const context = this.context;
    assert(context !== null && this.state === "ready", "requests run only after hello");
    this.inFlight++;
    let answer: Promise<Response>;
    try {
      answer = this.settings.handler(request, context);
    } catch (e) {
      answer = Promise.reject(e);
    }
    const key: SegmentKey | undefined = request.type === "readRecords" ? request.key : undefined;
    answer.then(
      (response) => {
        this.inFlight--;
        assert(response.type === "error" || response.type === EXPECTED_RESPONSE[request.type],
          `handler answered ${request.type} with ${response.type}`);
        this.send(requestId, response, key);
      },
      (e: unknown) => {
        this.inFlight--;
        // A broken invariant must stop the process, not become a polite error (assert.ts).
        if (e instanceof AssertionError) throw e;
        this.send(requestId, errorResponse(e), undefined);
      },
    );
  }

  // ----------------------------------------------------------------------------------------- output

  private send(requestId: number, response: Response, key: SegmentKey | undefined): void {
    if (this.state === "closed") return;
    try {
      this.batch.append(FrameKind.RESPONSE, requestId, this.clientMaxFrameBytes, (w) => writeResponse(w, response, key));
    } catch (e) {
      let refusal: BorealisError;
      if (isBorealisError(e, "FRAME_TOO_LARGE")) {
        refusal = new BorealisError("FRAME_TOO_LARGE", `${response.type} response exceeds the client's limit: ${e.message}`, e.details);
      } else {
        // The handler built a response that cannot be encoded (a negative LSN, a records response
        // without its key): a bug on this side, reported as INTERNAL rather than as silence.
        this.log.error("rpc-response-unencodable", { remote: this.connection.remote, type: response.type, error: e });
        refusal = new BorealisError("INTERNAL", `cannot encode ${response.type} response`);
      }
      // Error responses are small; the largest limit only guards against a message this code never makes.
      this.batch.append(FrameKind.RESPONSE, requestId, MAX_MAX_FRAME_BYTES, (w) => writeResponse(w, errorResponse(refusal)));
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Everything answered in this tick leaves in one write (one system call through cork/uncork).
      queueMicrotask(this.flushBound);
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const out = this.batch.take();
    if (this.state === "closed" || out === null) return;
    const bytes = out.byteLength;
    const ok = this.connection.write(out);
    if (this.blockedBytes >= 0) this.blockedBytes += bytes;
    else if (!ok) this.blockedBytes = bytes;
    if (this.blockedBytes > this.settings.maxBufferedOutputBytes) {
      // The peer sends requests but does not read answers: stop feeding it (CVE-2025-21605).
      this.log.warn("rpc-peer-not-reading", { remote: this.connection.remote, bufferedBytes: this.blockedBytes });
      this.close("peer not reading");
    }
  }

  /**
   * The stream is broken or the peer misbehaved: answer once (request id 0 when unknown), then close.
   * The error goes out with anything already queued, before the socket is destroyed.
   */
  private fail(e: unknown, requestId: number): void {
    if (this.state === "closed") return;
    const code: ErrorCode = isBorealisError(e) && STREAM_ERROR_CODES.has(e.code) ? e.code : "PROTOCOL_ERROR";
    const message = e instanceof Error ? e.message : String(e);
    this.log.warn("rpc-protocol-error", { remote: this.connection.remote, code, message, requestId });
    const details = isBorealisError(e) ? e.details : {};
    this.send(requestId, { type: "error", code, message, details }, undefined);
    this.flush();
    this.close(code);
  }
}
