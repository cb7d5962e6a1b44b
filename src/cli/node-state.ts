/**
 * What `borealis status` learns from each storage node itself, over the storage protocol: the node's
 * own view (`nodeStatus`: fenced or not, and each segment's SCL and epochs), beside what the control
 * plane believes. The two differ exactly when something is wrong — a node that is registered but not
 * serving, a segment the control plane placed that the node does not host, an epoch a segment missed.
 *
 * One function so the transport stays out of the command: it never throws; a node that cannot be
 * asked is a value saying why.
 */
import type { Env, Timer } from "../env/env.js";
import { parseHostPort } from "../core/types.js";
import type { SegmentState } from "../wire/messages.js";
import { StorageClient } from "../wire/storage-client.js";

export type NodeState =
  | { readonly reachable: true; readonly nodeId: string; readonly az: string; readonly fenced: boolean; readonly segments: readonly SegmentState[] }
  | { readonly reachable: false; readonly error: string };

/**
 * Asks the node at `address` for its status. Never throws, and never takes much longer than
 * `timeoutMs`: on top of the client's own connect and request timeouts there is one overall deadline, so
 * that `borealis status` answers even if a node, or a bug, leaves a request unanswered.
 */
export async function fetchNodeState(env: Env, address: string, timeoutMs: number): Promise<NodeState> {
  let client: StorageClient | undefined;
  let timer: Timer | undefined;
  const deadline = new Promise<NodeState>((resolve) => {
    timer = env.clock.setTimer(timeoutMs, () => resolve({ reachable: false, error: `no answer within ${timeoutMs} ms` }));
  });
  const ask = async (): Promise<NodeState> => {
    client = new StorageClient(env, parseHostPort(address), {
      role: "admin", senderId: "borealis-status", connectTimeoutMs: timeoutMs, requestTimeoutMs: timeoutMs,
    });
    await client.connect();
    const status = await client.nodeStatus({ timeoutMs });
    return { reachable: true, nodeId: status.nodeId, az: status.az, fenced: status.fenced, segments: status.segments };
  };
  try {
    return await Promise.race([
      ask().catch((e: unknown): NodeState => ({ reachable: false, error: e instanceof Error ? e.message : String(e) })),
      deadline,
    ]);
  } finally {
    timer?.cancel();
    client?.close();
  }
}
