/**
 * The client of one storage node: what the writer, recovery, tests, benchmarks and `borealis status` use
 * to talk to a node. It wraps an `RpcClient` with a connection lifecycle and typed helpers.
 *
 * Lifecycle (`state`):
 * - "down": no connection. Either nothing has asked yet (the first request connects, lazily), or the
 *   last attempt failed or the connection dropped, and a reconnect is scheduled after a capped,
 *   jittered exponential backoff (env.clock, env.random) — it keeps trying until `close()`.
 * - "connecting": an attempt is under way; requests issued meanwhile wait for it (bounded).
 * - "connected": requests go straight to the connection.
 *
 * Failing fast is the point: while the node is down, a request is rejected at once with
 * CONNECTION_CLOSED rather than held until the node returns, and when a connection drops every request
 * on it is rejected at once. The writer sends each batch to six segments and needs four answers
 * (invariant 12): a slow "maybe later" from a dead node would only delay the quorum. Retrying a request
 * is the caller's decision; this class never resends one.
 */
import { assert } from "../core/assert.js";
import { BorealisError } from "../core/errors.js";
import { formatHostPort, type HostPort, type Lsn } from "../core/types.js";
import type { Env, Logger, Timer } from "../env/env.js";
import type { RequestType, ResponseFor, SegmentState } from "./messages.js";
import { RpcClient, type ClientRequest, type RequestOptions, type RpcClientOptions } from "./rpc-client.js";
import { DEFAULT_MAX_QUEUED, type PeerInfo } from "./rpc-common.js";

export type StorageClientState = "connected" | "connecting" | "down";

export interface StorageClientOptions extends RpcClientOptions {
  /** First reconnect delay; doubles per failed attempt up to `maxDelayMs`. Defaults 50 ms and 2 s. */
  readonly reconnect?: { readonly initialDelayMs?: number; readonly maxDelayMs?: number };
}

/** A request's fields without its type tag: what each helper takes, so that helpers follow `messages.ts`. */
export type ArgsOf<T extends RequestType> = Omit<Extract<ClientRequest, { readonly type: T }>, "type">;

export type NodeStatus = Omit<ResponseFor["nodeStatus"], "type">;
export type PageVersion = Omit<ResponseFor["getPage"], "type">;
export type RecordsChunk = Omit<ResponseFor["readRecords"], "type">;

export class StorageClient {
  private readonly log: Logger;
  private client: RpcClient | null = null;
  private connecting: Promise<RpcClient> | null = null;
  private retryTimer: Timer | null = null;
  private failedAttempts = 0;
  private waitingForConnect = 0;
  private closed = false;
  private lastState: StorageClientState = "down";
  private readonly stateHandlers: ((state: StorageClientState) => void)[] = [];
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxWaiting: number;
  /** Bytes of connections that have ended (the current one counts itself). */
  private retiredSent = 0;
  private retiredReceived = 0;

  constructor(private readonly env: Env, readonly address: HostPort, private readonly options: StorageClientOptions) {
    this.initialDelayMs = options.reconnect?.initialDelayMs ?? 50;
    this.maxDelayMs = options.reconnect?.maxDelayMs ?? 2000;
    this.maxWaiting = options.maxQueued ?? DEFAULT_MAX_QUEUED;
    assert(this.initialDelayMs > 0 && this.maxDelayMs >= this.initialDelayMs, "reconnect delays: 0 < initial ≤ max");
    this.log = env.log.child({ component: "storage-client", node: formatHostPort(address) });
  }

  get state(): StorageClientState {
    return this.client !== null ? "connected" : this.connecting !== null ? "connecting" : "down";
  }

  /** What the node said in hello, while connected. */
  get peer(): PeerInfo | undefined {
    return this.client?.peer;
  }

  /** Bytes written to the node on every connection so far (application bytes: frames, not TCP/IP headers). */
  get bytesSent(): number {
    return this.retiredSent + (this.client?.bytesSent ?? 0);
  }

  /** Bytes read from the node on every connection so far. */
  get bytesReceived(): number {
    return this.retiredReceived + (this.client?.bytesReceived ?? 0);
  }

  /** Called on every change of `state`. */
  onStateChange(handler: (state: StorageClientState) => void): void {
    this.stateHandlers.push(handler);
  }

  /**
   * Connects now (skipping any backoff wait) unless connected; resolves when connected, rejects with the
   * attempt's error. Requests do not need it: they connect lazily.
   */
  async connect(): Promise<void> {
    if (this.closed) throw this.closedError();
    if (this.client !== null) return;
    await (this.connecting ?? this.startConnect());
  }

  /** Sends one request on the current connection (connecting first if nobody has yet). */
  async request<R extends ClientRequest>(req: R, options?: RequestOptions): Promise<ResponseFor[R["type"]]> {
    if (this.closed) throw this.closedError();
    if (this.client !== null) return this.client.request(req, options);
    if (this.connecting === null) {
      if (this.retryTimer !== null) {
        throw new BorealisError("CONNECTION_CLOSED", `storage node ${formatHostPort(this.address)} is down; reconnecting`);
      }
      void this.startConnect().catch(() => {});
    }
    if (this.waitingForConnect >= this.maxWaiting) {
      throw new BorealisError("TOO_MANY_IN_FLIGHT", `${this.waitingForConnect} requests waiting for a connection to ${formatHostPort(this.address)}`);
    }
    this.waitingForConnect++;
    let client: RpcClient;
    try {
      client = await this.connecting!;
    } finally {
      this.waitingForConnect--;
    }
    return client.request(req, options);
  }

  /** Stops reconnecting and closes the connection; pending requests reject with CONNECTION_CLOSED. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.retryTimer?.cancel();
    this.retryTimer = null;
    const client = this.client;
    this.client = null;
    if (client !== null) this.retire(client);
    client?.close();
    this.notify();
  }

  // ------------------------------------------------------------------------------------------ helpers

  /** Round-trip time in milliseconds. */
  async ping(options?: RequestOptions): Promise<number> {
    const started = this.env.clock.nowMs();
    await this.request({ type: "ping" }, options);
    return this.env.clock.nowMs() - started;
  }

  async nodeStatus(options?: RequestOptions): Promise<NodeStatus> {
    const { type: _, ...status } = await this.request({ type: "nodeStatus" }, options);
    return status;
  }

  async openSegment(args: ArgsOf<"openSegment">, options?: RequestOptions): Promise<SegmentState> {
    return (await this.request({ type: "openSegment", ...args }, options)).state;
  }

  /** Appends records to a segment; resolves, once they are durable, with the segment's SCL. */
  async writeBatch(args: ArgsOf<"writeBatch">, options?: RequestOptions): Promise<Lsn> {
    return (await this.request({ type: "writeBatch", ...args }, options)).scl;
  }

  async getPage(args: ArgsOf<"getPage">, options?: RequestOptions): Promise<PageVersion> {
    const { type: _, ...page } = await this.request({ type: "getPage", ...args }, options);
    return page;
  }

  async getSegmentState(args: ArgsOf<"getSegmentState">, options?: RequestOptions): Promise<SegmentState> {
    return (await this.request({ type: "getSegmentState", ...args }, options)).state;
  }

  async setEpoch(args: ArgsOf<"setEpoch">, options?: RequestOptions): Promise<SegmentState> {
    return (await this.request({ type: "setEpoch", ...args }, options)).state;
  }

  async readRecords(args: ArgsOf<"readRecords">, options?: RequestOptions): Promise<RecordsChunk> {
    const { type: _, ...chunk } = await this.request({ type: "readRecords", ...args }, options);
    return chunk;
  }

  async annul(args: ArgsOf<"annul">, options?: RequestOptions): Promise<SegmentState> {
    return (await this.request({ type: "annul", ...args }, options)).state;
  }

  // --------------------------------------------------------------------------------------- lifecycle

  private startConnect(): Promise<RpcClient> {
    assert(this.client === null && this.connecting === null && !this.closed, "one connection attempt at a time");
    this.retryTimer?.cancel();
    this.retryTimer = null;
    const attempt = RpcClient.connect(this.env, this.address, this.options).then(
      (client) => {
        this.connecting = null;
        if (this.closed) {
          this.retire(client);
          client.close();
          throw this.closedError();
        }
        this.client = client;
        this.failedAttempts = 0;
        client.onClose((reason) => this.dropped(client, reason));
        this.log.info("storage-connected", { nodeId: client.peer.nodeId, az: client.peer.az, version: client.peer.version });
        this.notify();
        return client;
      },
      (e: unknown) => {
        this.connecting = null;
        if (!this.closed) {
          this.failedAttempts++;
          this.log.debug("storage-connect-failed", { attempt: this.failedAttempts, error: e });
          this.scheduleReconnect();
        }
        this.notify();
        throw e;
      },
    );
    this.connecting = attempt;
    this.notify();
    return attempt;
  }

  private dropped(client: RpcClient, reason: BorealisError): void {
    if (this.client !== client) return;
    this.client = null;
    this.retire(client);
    if (!this.closed) {
      this.log.info("storage-disconnected", { reason: reason.message });
      this.scheduleReconnect();
    }
    this.notify();
  }

  private scheduleReconnect(): void {
    assert(this.retryTimer === null, "one reconnect scheduled at a time");
    // Equal jitter: half the capped exponential delay, plus up to the other half at random, so that a
    // writer's clients of a restarted node do not all knock at once.
    const exp = Math.min(this.maxDelayMs, this.initialDelayMs * 2 ** Math.min(30, Math.max(0, this.failedAttempts - 1)));
    const delayMs = exp / 2 + this.env.random.float() * (exp / 2);
    this.retryTimer = this.env.clock.setTimer(delayMs, () => {
      this.retryTimer = null;
      if (this.closed || this.client !== null || this.connecting !== null) return;
      void this.startConnect().catch(() => {});
    });
  }

  /** Keeps the byte counts of a connection that is no longer `this.client`. */
  private retire(client: RpcClient): void {
    this.retiredSent += client.bytesSent;
    this.retiredReceived += client.bytesReceived;
  }

  private notify(): void {
    const state = this.state;
    if (state === this.lastState) return;
    this.lastState = state;
    for (const h of this.stateHandlers) h(state);
  }

  private closedError(): BorealisError {
    return new BorealisError("CONNECTION_CLOSED", `storage client for ${formatHostPort(this.address)} is closed`);
  }
}
