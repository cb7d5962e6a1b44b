/**
 * One `StorageClient` per storage node, shared by everything the writer does with that node: the
 * shippers of every PG it hosts, page reads, recovery. One connection per node keeps frames from
 * different PGs coalescing into the same system calls.
 */
import type { Env } from "../../env/env.js";
import { parseHostPort, type NodeId } from "../../core/types.js";
import { BorealisError } from "../../core/errors.js";
import { StorageClient } from "../../wire/storage-client.js";

export interface NodePoolOptions {
  readonly senderId: string;
  readonly requestTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
}

export class NodePool {
  private readonly clients = new Map<NodeId, { address: string; client: StorageClient }>();
  private closed = false;
  /** Bytes of clients replaced because their node moved. */
  private retiredSent = 0;
  private retiredReceived = 0;

  constructor(private readonly env: Env, private readonly options: NodePoolOptions) {}

  /** The client for `nodeId` at `address`; a node that moved gets a new client. */
  client(nodeId: NodeId, address: string | null): StorageClient {
    if (this.closed) throw new BorealisError("SHUTTING_DOWN", "the writer is shutting down");
    const known = this.clients.get(nodeId);
    if (known !== undefined && (address === null || known.address === address)) return known.client;
    if (address === null) {
      throw new BorealisError("CONNECTION_CLOSED", `storage node ${nodeId} has not registered an address`);
    }
    if (known !== undefined) {
      this.retiredSent += known.client.bytesSent;
      this.retiredReceived += known.client.bytesReceived;
      known.client.close();
    }
    const client = new StorageClient(this.env, parseHostPort(address), {
      role: "writer",
      senderId: this.options.senderId,
      ...(this.options.requestTimeoutMs !== undefined ? { requestTimeoutMs: this.options.requestTimeoutMs } : {}),
      connectTimeoutMs: this.options.connectTimeoutMs ?? 2000,
      reconnect: { initialDelayMs: 20, maxDelayMs: 1000 },
    });
    this.clients.set(nodeId, { address, client });
    return client;
  }

  /**
   * Bytes sent to and received from storage nodes on every connection so far — shipping, page reads,
   * recovery, catch-up — as frames on the wire (TCP/IP headers not included): the writer's `/metrics`.
   */
  trafficBytes(): { sent: number; received: number } {
    let sent = this.retiredSent;
    let received = this.retiredReceived;
    for (const { client } of this.clients.values()) {
      sent += client.bytesSent;
      received += client.bytesReceived;
    }
    return { sent, received };
  }

  close(): void {
    this.closed = true;
    for (const { client } of this.clients.values()) client.close();
    this.clients.clear();
  }
}
