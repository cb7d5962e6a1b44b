/**
 * A simulated network of byte streams with TCP's guarantees by default — ordered, reliable while the
 * connection lives — and the faults real networks have: latency and jitter, connection resets,
 * partitions (connections across them are reset and new ones refused), and, on links set to chaos,
 * frame-level drops, duplicates and reordering that the protocol's checksums, request ids and
 * idempotent handlers must survive.
 *
 * Delivery events are owned by the receiving process: a killed process receives nothing more.
 */
import type { Connection, Listener, Network } from "../env/env.js";
import type { HostPort } from "../core/types.js";
import type { SeededRandom } from "./random.js";
import type { SimProcess } from "./world.js";

export interface LinkConfig {
  latencyMs: readonly [number, number];
  /** Per chunk written: probability of loss, duplication, or delivery out of order (chaos links only). */
  dropRate: number;
  duplicateRate: number;
  reorderRate: number;
}

export const calmLink: LinkConfig = { latencyMs: [0.05, 0.3], dropRate: 0, duplicateRate: 0, reorderRate: 0 };

class NetError extends Error {
  constructor(readonly code: string, message: string) {
    super(`${code}: ${message}`);
  }
}

class SimConnection implements Connection {
  peer!: SimConnection;
  private dataHandlers: ((b: Uint8Array) => void)[] = [];
  private closeHandlers: ((e?: Error) => void)[] = [];
  closed = false;
  /** Latest scheduled delivery time on this direction, so that a calm link stays in order. */
  private lastDeliveryAt = 0;

  constructor(
    readonly net: SimNetwork,
    readonly owner: SimProcess,
    readonly remote: string,
    readonly localHost: string,
    readonly remoteHost: string,
  ) {}

  write(chunks: Uint8Array | readonly Uint8Array[]): boolean {
    if (this.closed) return false;
    const list = chunks instanceof Uint8Array ? [chunks] : chunks;
    for (const c of list) this.send(c.slice());
    return true;
  }

  private send(bytes: Uint8Array): void {
    const link = this.net.link(this.localHost, this.remoteHost);
    const rnd = this.net.random;
    if (rnd.chance(link.dropRate)) return;
    const copies = rnd.chance(link.duplicateRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const now = this.net.now();
      let at = now + link.latencyMs[0] + rnd.float() * (link.latencyMs[1] - link.latencyMs[0]);
      if (!rnd.chance(link.reorderRate)) at = Math.max(at, this.lastDeliveryAt);
      this.lastDeliveryAt = Math.max(this.lastDeliveryAt, at);
      const peer = this.peer;
      peer.owner.schedule(at - now, () => peer.deliver(bytes));
    }
  }

  deliver(bytes: Uint8Array): void {
    if (this.closed) return;
    for (const h of this.dataHandlers) h(bytes);
  }

  onData(handler: (bytes: Uint8Array) => void): void {
    this.dataHandlers.push(handler);
  }

  onClose(handler: (error?: Error) => void): void {
    if (this.closed) this.owner.schedule(0, () => handler());
    else this.closeHandlers.push(handler);
  }

  onDrain(_handler: () => void): void {
    // Writes never report back-pressure in the simulation.
  }

  /** Closes this end now and the peer's after the link's latency, as a TCP reset would. */
  destroy(error?: Error): void {
    if (this.closed) return;
    this.closeLocal(error);
    const peer = this.peer;
    const link = this.net.link(this.localHost, this.remoteHost);
    peer.owner.schedule(link.latencyMs[1], () => peer.closeLocal(new NetError("ECONNRESET", "connection reset by peer")));
  }

  closeLocal(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.net.forget(this);
    const handlers = this.closeHandlers;
    this.closeHandlers = [];
    // Close callbacks run on the owner's clock so a dead owner hears nothing.
    this.owner.schedule(0, () => { for (const h of handlers) h(error); });
  }
}

export class SimNetwork {
  private listeners = new Map<string, { owner: SimProcess; onConnection: (c: Connection) => void }>();
  private connections = new Set<SimConnection>();
  private partitions = new Set<string>();
  private links = new Map<string, LinkConfig>();
  defaultLink: LinkConfig = calmLink;

  constructor(readonly random: SeededRandom, readonly now: () => number) {}

  link(a: string, b: string): LinkConfig {
    return this.links.get(pairKey(a, b)) ?? this.defaultLink;
  }

  setLink(a: string, b: string, config: LinkConfig): void {
    this.links.set(pairKey(a, b), config);
  }

  isPartitioned(a: string, b: string): boolean {
    return a !== b && this.partitions.has(pairKey(a, b));
  }

  /** Cuts every link between the two groups: live connections are reset, new ones time out. */
  partition(groupA: readonly string[], groupB: readonly string[]): void {
    for (const a of groupA) for (const b of groupB) if (a !== b) this.partitions.add(pairKey(a, b));
    for (const c of [...this.connections]) {
      if (this.isPartitioned(c.localHost, c.remoteHost)) c.destroy(new NetError("ETIMEDOUT", "partitioned"));
    }
  }

  heal(): void {
    this.partitions.clear();
  }

  /** Resets every connection of a host (its process died). */
  resetHost(host: string): void {
    for (const c of [...this.connections]) {
      if (c.localHost === host) c.destroy(new NetError("ECONNRESET", "process died"));
    }
    for (const [addr, l] of [...this.listeners]) if (l.owner.host === host) this.listeners.delete(addr);
  }

  forget(c: SimConnection): void {
    this.connections.delete(c);
  }

  /** The Network one simulated process sees. */
  forProcess(owner: SimProcess): Network {
    return {
      listen: async (address: HostPort, onConnection: (c: Connection) => void): Promise<Listener> => {
        const key = `${owner.host}:${address.port}`;
        if (this.listeners.has(key)) throw new NetError("EADDRINUSE", key);
        this.listeners.set(key, { owner, onConnection });
        return {
          address: { host: owner.host, port: address.port },
          close: async () => { if (this.listeners.get(key)?.owner === owner) this.listeners.delete(key); },
        };
      },
      connect: (address: HostPort, options?: { timeoutMs?: number }): Promise<Connection> => {
        return new Promise((resolve, reject) => {
          const link = this.link(owner.host, address.host);
          const rtt = 2 * link.latencyMs[1];
          if (this.isPartitioned(owner.host, address.host)) {
            const timeout = options?.timeoutMs ?? 3000;
            owner.schedule(timeout, () => reject(new NetError("ETIMEDOUT", `connect to ${address.host}:${address.port}`)));
            return;
          }
          owner.schedule(rtt, () => {
            const listener = this.listeners.get(`${address.host}:${address.port}`);
            if (listener === undefined || !listener.owner.alive || this.isPartitioned(owner.host, address.host)) {
              reject(new NetError("ECONNREFUSED", `connect to ${address.host}:${address.port}`));
              return;
            }
            const client = new SimConnection(this, owner, `${address.host}:${address.port}`, owner.host, address.host);
            const server = new SimConnection(this, listener.owner, `${owner.host}:ephemeral`, address.host, owner.host);
            client.peer = server;
            server.peer = client;
            this.connections.add(client);
            this.connections.add(server);
            listener.owner.schedule(0, () => listener.onConnection(server));
            resolve(client);
          });
        });
      },
    };
  }
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}
