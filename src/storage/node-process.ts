/**
 * Runs one storage node as a process: opens its data directory (recovering its hot log and page
 * store), serves the storage protocol over TCP, and registers with the control plane and heartbeats
 * to it. `borealis storage-node` calls this; so do tests that want a node in-process.
 *
 * The order matters: the node recovers before it listens, so no request ever sees a half-recovered
 * segment; it listens before it heartbeats, so the control plane never advertises an address that
 * refuses connections.
 */
import type { Env } from "../env/env.js";
import { formatHostPort, type Az, type HostPort, type NodeId } from "../core/types.js";
import { withContext } from "../core/errors.js";
import { RpcServer } from "../wire/rpc-server.js";
import { ControlPlaneClient } from "../control-plane/client.js";
import { startHeartbeats, type HeartbeatLoop } from "../control-plane/heartbeat.js";
import { StorageNode, type StorageNodeConfig } from "./storage-node.js";

export interface StorageNodeOptions {
  readonly nodeId: NodeId;
  readonly az: Az;
  readonly dataDir: string;
  readonly listen: HostPort;
  /** Control plane URL to register with and heartbeat to; none for a standalone node. */
  readonly controlPlaneUrl?: string;
  /** Address other processes should use to reach this node, when it differs from `listen`. */
  readonly advertise?: HostPort;
  /** Tuning passed to the node (hot-log file size, materialization, retention, limits). */
  readonly tuning?: Omit<StorageNodeConfig, "nodeId" | "az" | "dataDir">;
}

export interface RunningStorageNode {
  /** The address actually bound (the port is chosen by the OS when `listen.port` is 0). */
  readonly address: HostPort;
  readonly node: StorageNode;
  /** Stops accepting requests, finishes in-flight fsyncs, closes the stores. */
  close(): Promise<void>;
}

export async function runStorageNode(env: Env, options: StorageNodeOptions): Promise<RunningStorageNode> {
  const node = await StorageNode.open(env, {
    ...options.tuning,
    nodeId: options.nodeId,
    az: options.az,
    dataDir: options.dataDir,
  }).catch((e: unknown) => { throw withContext(`open storage node ${options.nodeId} in ${options.dataDir}`, e); });

  const server = new RpcServer(env, {
    nodeId: options.nodeId,
    az: options.az,
    handler: (request) => node.handle(request),
  });
  let address: HostPort;
  try {
    address = await server.listen(options.listen);
  } catch (e) {
    await node.close();
    throw withContext(`listen on ${formatHostPort(options.listen)}`, e);
  }

  let heartbeats: HeartbeatLoop | undefined;
  if (options.controlPlaneUrl !== undefined) {
    const advertised = options.advertise ?? address;
    heartbeats = startHeartbeats(env, new ControlPlaneClient(options.controlPlaneUrl), {
      nodeId: options.nodeId,
      az: options.az,
      address: formatHostPort(advertised),
    });
  }

  let closing: Promise<void> | undefined;
  return {
    address,
    node,
    close: () => {
      closing ??= (async () => {
        heartbeats?.stop();
        await server.close();
        await node.close();
      })();
      return closing;
    },
  };
}
