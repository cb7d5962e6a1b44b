/**
 * A TCP fault proxy on loopback, in the spirit of toxiproxy (whose server is not available here, and
 * netem is absent on these machines: ../shared/reference/reliability.md §0). One proxy stands in front
 * of one storage node; the node advertises the proxy's address to the control plane, so every
 * connection to the node — the writer's shipping, page reads, recovery and catch-up (which the writer
 * drives, node to writer to node) — crosses it. Faults are "toxics", changed at any time:
 *
 * - `partition`: nothing gets through, in the chosen direction(s). Connections stay open and silent
 *   (what a peer sees while TCP retransmits into a partition); new ones are accepted and stay silent.
 *   When the partition heals, every connection that lost bytes is reset, as TCP would after its
 *   retransmission timeout: a byte stream never resumes with a hole in it.
 * - `reset`: every connection is reset (RST), and new ones are reset as soon as they are accepted.
 * - `latency`: each chunk is delayed by `ms` ± `jitterMs`; order is kept.
 * - `slicer`: chunks are cut into `bytes`-sized pieces, `delayMs` apart (exercises frame reassembly).
 * - `bandwidth`: at most `bytesPerSecond` in each direction.
 *
 * Direction: "upstream" is client → node (the writer's requests), "downstream" node → client (answers);
 * a one-way partition lets requests arrive while their answers vanish.
 *
 * Bounded: at most `maxConnections` connections; data held for latency/bandwidth is bounded by what
 * the node and writer send (their own windows), and a partition drops rather than buffers.
 */
import * as net from "node:net";

export type Direction = "upstream" | "downstream" | "both";

export type Toxic =
  | { readonly kind: "partition"; readonly direction?: Direction }
  | { readonly kind: "reset" }
  | { readonly kind: "latency"; readonly ms: number; readonly jitterMs?: number; readonly direction?: Direction }
  | { readonly kind: "slicer"; readonly bytes: number; readonly delayMs?: number; readonly direction?: Direction }
  | { readonly kind: "bandwidth"; readonly bytesPerSecond: number; readonly direction?: Direction };

export interface FaultProxyOptions {
  /**
   * The real server; may be set later (`setTarget`), so a proxy can hold its port before the server's
   * port is chosen. Connections accepted without a target are closed.
   */
  readonly target?: { readonly host: string; readonly port: number };
  /** Loopback port to listen on; 0 (default) picks a free one. */
  readonly port?: number;
  readonly maxConnections?: number;
  /** Randomness for jitter (a seeded generator keeps runs reproducible). Default Math.random. */
  readonly random?: () => number;
}

export interface ProxyStats {
  readonly accepted: number;
  readonly active: number;
  readonly resets: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly bytesDropped: number;
}

/** One direction of one connection: delivers chunks in order, each no earlier than its due time. */
class Pump {
  private readonly queue: { data: Buffer; at: number }[] = [];
  private lastAt = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly to: net.Socket, private readonly from: net.Socket) {}

  push(data: Buffer, at: number): void {
    const due = Math.max(at, this.lastAt);
    this.lastAt = due;
    this.queue.push({ data, at: due });
    this.drain();
  }

  /** When the last queued byte will leave (for bandwidth arithmetic). */
  get busyUntil(): number {
    return this.lastAt;
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }

  private drain(): void {
    if (this.timer !== undefined) return;
    const now = performance.now();
    while (this.queue.length > 0 && this.queue[0]!.at <= now) {
      const { data } = this.queue.shift()!;
      if (this.to.destroyed) {
        this.queue.length = 0;
        return;
      }
      // Back-pressure: a slow receiver pauses the sender's socket (bounded memory without toxics).
      if (!this.to.write(data)) {
        this.from.pause();
        this.to.once("drain", () => this.from.resume());
      }
    }
    if (this.queue.length > 0) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.drain();
      }, Math.max(0, this.queue[0]!.at - now));
    }
  }
}

interface Conn {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  readonly up: Pump;
  readonly down: Pump;
  /** Bytes were dropped by a partition: reset when it heals. */
  tainted: boolean;
}

export class FaultProxy {
  private readonly conns = new Set<Conn>();
  private toxics: readonly Toxic[] = [];
  private accepted = 0;
  private resets = 0;
  private bytesUp = 0;
  private bytesDown = 0;
  private bytesDropped = 0;
  private readonly random: () => number;
  private target: { readonly host: string; readonly port: number } | undefined;

  private constructor(private readonly server: net.Server, readonly port: number, private readonly options: FaultProxyOptions) {
    this.random = options.random ?? Math.random;
    this.target = options.target;
    server.on("connection", (socket) => this.accept(socket));
  }

  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const server = net.createServer({ noDelay: true });
    server.maxConnections = options.maxConnections ?? 256;
    const port = await new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, "127.0.0.1", () => {
        server.off("error", reject);
        resolve((server.address() as net.AddressInfo).port);
      });
    });
    return new FaultProxy(server, port, options);
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  setTarget(target: { readonly host: string; readonly port: number }): void {
    this.target = target;
  }

  get current(): readonly Toxic[] {
    return this.toxics;
  }

  stats(): ProxyStats {
    return {
      accepted: this.accepted, active: this.conns.size, resets: this.resets,
      bytesUp: this.bytesUp, bytesDown: this.bytesDown, bytesDropped: this.bytesDropped,
    };
  }

  /** Replaces the toxics. Healing a partition resets the connections that lost bytes to it. */
  setToxics(toxics: readonly Toxic[]): void {
    this.toxics = toxics;
    if (toxics.some((t) => t.kind === "reset")) {
      for (const c of [...this.conns]) this.reset(c);
      return;
    }
    if (!toxics.some((t) => t.kind === "partition")) {
      for (const c of [...this.conns]) if (c.tainted) this.reset(c);
    }
  }

  clear(): void {
    this.setToxics([]);
  }

  async close(): Promise<void> {
    for (const c of [...this.conns]) this.drop(c, false);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---------------------------------------------------------------------------------------------

  private accept(client: net.Socket): void {
    this.accepted++;
    if (this.target === undefined) {
      client.destroy();
      return;
    }
    client.setNoDelay(true);
    const upstream = net.connect({ host: this.target.host, port: this.target.port, noDelay: true });
    const conn: Conn = { client, upstream, up: new Pump(upstream, client), down: new Pump(client, upstream), tainted: false };
    this.conns.add(conn);
    const onError = (): void => this.drop(conn, true);
    client.on("error", onError);
    upstream.on("error", onError);
    client.on("close", () => this.drop(conn, false));
    upstream.on("close", () => this.drop(conn, false));
    client.on("data", (d: Buffer) => this.forward(conn, d, "upstream"));
    upstream.on("data", (d: Buffer) => this.forward(conn, d, "downstream"));
    if (this.toxics.some((t) => t.kind === "reset")) this.reset(conn);
  }

  private forward(conn: Conn, data: Buffer, dir: "upstream" | "downstream"): void {
    const applies = (t: Toxic): boolean => t.kind === "reset" || (t.direction ?? "both") === "both" || t.direction === dir;
    const active = this.toxics.filter(applies);
    if (active.some((t) => t.kind === "reset")) {
      this.reset(conn);
      return;
    }
    if (active.some((t) => t.kind === "partition")) {
      this.bytesDropped += data.byteLength;
      conn.tainted = true;
      return;
    }
    if (dir === "upstream") this.bytesUp += data.byteLength;
    else this.bytesDown += data.byteLength;
    const pump = dir === "upstream" ? conn.up : conn.down;
    let at = performance.now();
    let pieces: { data: Buffer; at: number }[] = [{ data, at }];
    for (const t of active) {
      switch (t.kind) {
        case "latency": {
          const jitter = t.jitterMs ?? 0;
          const delay = Math.max(0, t.ms + (this.random() * 2 - 1) * jitter);
          pieces = pieces.map((p) => ({ data: p.data, at: p.at + delay }));
          break;
        }
        case "slicer": {
          const size = Math.max(1, t.bytes);
          const out: { data: Buffer; at: number }[] = [];
          for (const p of pieces) {
            for (let off = 0, i = 0; off < p.data.byteLength; off += size, i++) {
              out.push({ data: p.data.subarray(off, off + size), at: p.at + i * (t.delayMs ?? 0) });
            }
          }
          pieces = out;
          break;
        }
        case "bandwidth": {
          let t0 = Math.max(at, pump.busyUntil);
          pieces = pieces.map((p) => {
            t0 = Math.max(t0, p.at) + (p.data.byteLength * 1000) / Math.max(1, t.bytesPerSecond);
            return { data: p.data, at: t0 };
          });
          at = t0;
          break;
        }
        default:
          break;
      }
    }
    for (const p of pieces) pump.push(p.data, p.at);
  }

  private reset(conn: Conn): void {
    this.resets++;
    conn.client.resetAndDestroy();
    conn.upstream.resetAndDestroy();
    this.drop(conn, false);
  }

  private drop(conn: Conn, destroy: boolean): void {
    if (!this.conns.delete(conn)) return;
    conn.up.stop();
    conn.down.stop();
    if (destroy || !conn.client.destroyed) conn.client.destroy();
    if (destroy || !conn.upstream.destroyed) conn.upstream.destroy();
  }
}
