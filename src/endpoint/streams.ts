/**
 * Hrana-over-HTTP streams: one engine session each, addressed by single-use batons, expired when idle.
 *
 * HTTP has no connection to tie a stream's requests together, so every response carries a *baton*
 * that the client must present with its next request on that stream (HRANA_3_SPEC.md, "Hrana over
 * HTTP"). Rules, following sqld (libsql-server/src/hrana/http/stream.rs):
 *
 * - A baton is `base64url(streamId ‖ seq ‖ HMAC-SHA256(key, streamId ‖ seq)[0..16])`. The key is drawn
 *   from the environment's randomness when the server starts, so batons are unforgeable and die with
 *   the process. `streamId` is 64 random bits; `seq` starts random and goes up by one on every use.
 * - A baton is single-use: acquiring a stream bumps its `seq`, so presenting the same baton again fails
 *   with BATON_REUSED. Acquiring also marks the stream busy, so requests on one stream are strictly
 *   serial even if a misbehaving client sends two at once (the second gets BATON_REUSED).
 * - A stream released idle expires after `idleTimeoutMs` (default 10 s, like sqld) without a request.
 *   Expiry closes its session, which rolls back its open transaction: an abandoned interactive
 *   transaction must not hold the write lock for ever. Its id is remembered for
 *   `expiredRetentionMs` (sqld: 300 s) so that a late request gets STREAM_EXPIRED, not BATON_INVALID.
 *   Timers come from `Env.clock`, so expiry runs in simulated time under the simulator.
 * - At most `maxStreams` streams exist at once (each holds an engine session); a new one beyond that is
 *   refused with TOO_MANY_STREAMS rather than queued. The expired-id memory is bounded too.
 *
 * States: idle --acquire--> busy --release--> idle | closed;  idle --timer--> expired (removed).
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { assert } from "../core/assert.js";
import type { SqlEngine, SqlSession } from "../compute/sql-engine.js";
import type { Env, Logger, Timer } from "../env/env.js";
import { HranaError } from "./errors.js";

export interface StreamTableOptions {
  readonly idleTimeoutMs: number;
  readonly maxStreams: number;
  readonly expiredRetentionMs: number;
  readonly maxExpiredRemembered: number;
  /** Bounds on the SQL texts a stream may store with `store_sql`. */
  readonly maxStoredSql: number;
  readonly maxStoredSqlBytes: number;
}

export type StreamState = "idle" | "busy" | "closed";

export class HranaStream {
  state: StreamState = "busy";
  /** SQL texts stored with `store_sql`, scoped to this stream (HTTP's rule). */
  readonly sqls = new Map<number, string>();
  sqlBytes = 0;
  /** The seq the next baton must carry. */
  seq: bigint;
  timer: Timer | undefined;

  constructor(readonly id: bigint, readonly session: SqlSession, seq: bigint) {
    this.seq = seq;
  }
}

const ID_BYTES = 8;
const SEQ_BYTES = 8;
const MAC_BYTES = 16;
const BATON_BYTES = ID_BYTES + SEQ_BYTES + MAC_BYTES;
const U64 = 2n ** 64n;

export class StreamTable {
  private readonly streams = new Map<bigint, HranaStream>();
  /** Expired stream ids → when they expired (ms, env clock); insertion order is expiry order. */
  private readonly expired = new Map<bigint, number>();
  private readonly key: Buffer;
  private readonly closing = new Set<Promise<void>>();
  private shuttingDown = false;

  constructor(
    private readonly env: Env,
    private readonly engine: SqlEngine,
    readonly options: StreamTableOptions,
    private readonly log: Logger,
  ) {
    assert(options.idleTimeoutMs > 0 && options.maxStreams > 0, "stream table limits must be positive");
    this.key = Buffer.from(randomBytes(env, 32));
  }

  get size(): number {
    return this.streams.size;
  }

  /**
   * Opens a new stream (`baton` null) or takes the one the baton names. The stream is busy until
   * `release`. Throws a HranaError for a bad, reused or expired baton and when streams are exhausted.
   */
  acquire(baton: string | null): HranaStream {
    if (this.shuttingDown) throw new HranaError("SHUTTING_DOWN");
    if (baton === null) return this.open();

    const { id, seq } = this.decodeBaton(baton);
    const stream = this.streams.get(id);
    if (stream === undefined) {
      const expiredAt = this.expired.get(id);
      if (expiredAt !== undefined) {
        throw new HranaError(
          "STREAM_EXPIRED",
          `The stream has expired after ${this.options.idleTimeoutMs} ms without a request; ` +
            "its open transaction, if any, was rolled back",
        );
      }
      // Authentic but unknown: closed by the client, or expired so long ago that we forgot it.
      throw new HranaError("STREAM_EXPIRED", "The stream is closed or has expired");
    }
    if (stream.state === "busy") {
      throw new HranaError("BATON_REUSED", "A request on this stream is already running; requests on a stream must be sent one at a time");
    }
    assert(stream.state === "idle", "only idle streams are in the table");
    if (seq !== stream.seq) {
      throw new HranaError("BATON_REUSED", "This baton was already used; each response carries the baton for the next request");
    }
    stream.timer?.cancel();
    stream.timer = undefined;
    stream.state = "busy";
    stream.seq = (stream.seq + 1n) % U64;
    return stream;
  }

  /**
   * Ends a request on `stream`: returns the baton for the next request, or null when the stream was
   * closed (its session is then already closed, by the `close` request).
   */
  release(stream: HranaStream): string | null {
    assert(stream.state !== "idle", "release of a stream that was not acquired");
    if (stream.state === "closed" || this.shuttingDown) {
      this.streams.delete(stream.id);
      if (stream.state !== "closed") this.closeSession(stream, "shutdown");
      stream.state = "closed";
      return null;
    }
    stream.state = "idle";
    stream.timer = this.env.clock.setTimer(this.options.idleTimeoutMs, () => this.expire(stream));
    return this.encodeBaton(stream.id, stream.seq);
  }

  /** Closes a busy stream's session (the `close` request); `release` will then return null. */
  async close(stream: HranaStream): Promise<void> {
    assert(stream.state === "busy", "close of a stream not held by this request");
    stream.state = "closed";
    stream.sqls.clear();
    await stream.session.close();
  }

  /** Stops accepting streams and closes every idle one; busy ones close when their request ends. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    for (const stream of [...this.streams.values()]) {
      if (stream.state !== "idle") continue;
      stream.timer?.cancel();
      stream.state = "closed";
      this.streams.delete(stream.id);
      this.closeSession(stream, "shutdown");
    }
    await Promise.all([...this.closing]);
  }

  /** Waits for sessions being closed in the background (expiry, shutdown). */
  async settled(): Promise<void> {
    await Promise.all([...this.closing]);
  }

  private open(): HranaStream {
    if (this.streams.size >= this.options.maxStreams) {
      throw new HranaError(
        "TOO_MANY_STREAMS",
        `The server has ${this.streams.size} open streams, its limit; close streams (or let them expire) and retry`,
      );
    }
    let id = 0n;
    // 64 random bits collide with an open stream with negligible probability; a few retries bound it.
    for (let attempt = 0; attempt < 8; attempt++) {
      id = bytesToBigInt(randomBytes(this.env, ID_BYTES));
      if (!this.streams.has(id) && !this.expired.has(id)) break;
    }
    assert(!this.streams.has(id), "stream id collision after retries");
    // openSession may throw (e.g. the engine's own connection limit): nothing is registered yet.
    const session = this.engine.openSession();
    const stream = new HranaStream(id, session, bytesToBigInt(randomBytes(this.env, SEQ_BYTES)));
    this.streams.set(id, stream);
    return stream;
  }

  private expire(stream: HranaStream): void {
    if (stream.state !== "idle" || this.streams.get(stream.id) !== stream) return;
    stream.timer = undefined;
    stream.state = "closed";
    this.streams.delete(stream.id);
    this.rememberExpired(stream.id);
    this.log.debug("stream-expired", { idleTimeoutMs: this.options.idleTimeoutMs });
    this.closeSession(stream, "expiry");
  }

  private rememberExpired(id: bigint): void {
    const now = this.env.clock.nowMs();
    // Drop what is too old or over the bound; the map is in expiry order, so look at the front only.
    for (const [oldId, at] of this.expired) {
      if (now - at < this.options.expiredRetentionMs && this.expired.size < this.options.maxExpiredRemembered) break;
      this.expired.delete(oldId);
    }
    this.expired.set(id, now);
  }

  /** Closes a session in the background (rolling back its transaction); errors are logged only. */
  private closeSession(stream: HranaStream, reason: string): void {
    const p = stream.session.close().then(
      () => {},
      (e: unknown) => this.log.warn("stream-session-close-failed", { reason, error: e }),
    );
    this.closing.add(p);
    void p.finally(() => this.closing.delete(p));
  }

  // ------------------------------------------------------------------------------------------ batons

  private encodeBaton(id: bigint, seq: bigint): string {
    const buf = Buffer.alloc(BATON_BYTES);
    buf.writeBigUInt64BE(id, 0);
    buf.writeBigUInt64BE(seq, ID_BYTES);
    this.mac(buf.subarray(0, ID_BYTES + SEQ_BYTES)).copy(buf, ID_BYTES + SEQ_BYTES);
    return buf.toString("base64url");
  }

  private decodeBaton(baton: string): { id: bigint; seq: bigint } {
    // Length check before decoding: a baton is small, and a 10 MiB "baton" should cost nothing.
    if (baton.length > 64 || !/^[A-Za-z0-9_-]+$/.test(baton)) throw new HranaError("BATON_INVALID", "Received an invalid baton");
    const buf = Buffer.from(baton, "base64url");
    if (buf.length !== BATON_BYTES) throw new HranaError("BATON_INVALID", "Received an invalid baton");
    const payload = buf.subarray(0, ID_BYTES + SEQ_BYTES);
    if (!timingSafeEqual(this.mac(payload), buf.subarray(ID_BYTES + SEQ_BYTES))) {
      throw new HranaError("BATON_INVALID", "Received a baton this server did not issue (or issued before a restart)");
    }
    return { id: buf.readBigUInt64BE(0), seq: buf.readBigUInt64BE(ID_BYTES) };
  }

  private mac(payload: Uint8Array): Buffer {
    return createHmac("sha256", this.key).update(payload).digest().subarray(0, MAC_BYTES);
  }
}

function randomBytes(env: Env, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = env.random.int(256);
  return out;
}

function bytesToBigInt(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}
