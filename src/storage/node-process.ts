/**
 * Runs one storage node as a process: opens its data directory, recovers its hot log, listens for the
 * storage protocol and registers with the control plane. `borealis storage-node` calls this.
 *
 * NOTE: being wired together from the storage core (`storage-node.ts`) and the RPC server
 * (`src/wire/rpc-server.ts`); the signature is fixed so the CLI can call it.
 */
import type { Env } from "../env/env.js";
import type { Az, HostPort, NodeId } from "../core/types.js";

export interface StorageNodeOptions {
  readonly nodeId: NodeId;
  readonly az: Az;
  readonly dataDir: string;
  readonly listen: HostPort;
  /** Control plane URL to register with and heartbeat to; none for a standalone node. */
  readonly controlPlaneUrl?: string;
  /** Address other processes should use to reach this node, when it differs from `listen`. */
  readonly advertise?: HostPort;
}

export interface RunningStorageNode {
  /** The address actually bound (the port is chosen by the OS when `listen.port` is 0). */
  readonly address: HostPort;
  /** Stops accepting requests, finishes in-flight fsyncs, closes the stores. */
  close(): Promise<void>;
}

export async function runStorageNode(_env: Env, _options: StorageNodeOptions): Promise<RunningStorageNode> {
  throw new Error("runStorageNode: not wired yet");
}
