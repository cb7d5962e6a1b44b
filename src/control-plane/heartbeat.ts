/**
 * A storage node's heartbeat loop: registers the node with the control plane and keeps it alive.
 * `runStorageNode` (src/storage/node-process.ts) starts one when it is given a control plane URL:
 *
 *   const loop = startHeartbeats(env, new ControlPlaneClient(url), { nodeId, az, address });
 *   … on close: loop.stop();
 *
 * One heartbeat at a time (a slow control plane never piles up requests), on env's clock (so the
 * simulator drives it), logging only transitions (reachable ↔ unreachable), not every failure.
 */
import type { Env, Timer } from "../env/env.js";
import { assert } from "../core/assert.js";
import type { ControlPlaneApi, HeartbeatRequest, HeartbeatResponse } from "./api.js";

export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1000;

export interface HeartbeatLoop {
  /** Resolves after the first heartbeat the control plane accepted (it retries until then). */
  readonly firstBeat: Promise<HeartbeatResponse>;
  stop(): void;
}

export function startHeartbeats(
  env: Env,
  api: Pick<ControlPlaneApi, "heartbeat">,
  request: HeartbeatRequest,
  options: { intervalMs?: number } = {},
): HeartbeatLoop {
  const intervalMs = options.intervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
  assert(Number.isSafeInteger(intervalMs) && intervalMs > 0, "heartbeat interval must be positive");
  const log = env.log.child({ component: "heartbeat", nodeId: request.nodeId });
  let stopped = false;
  let timer: Timer | undefined;
  let reachable: boolean | undefined;
  let resolveFirst!: (r: HeartbeatResponse) => void;
  const firstBeat = new Promise<HeartbeatResponse>((resolve) => { resolveFirst = resolve; });

  const beat = async (): Promise<void> => {
    try {
      const response = await api.heartbeat(request);
      if (reachable !== true) log.info("control-plane-reachable", { heartbeatTimeoutMs: response.heartbeatTimeoutMs });
      reachable = true;
      resolveFirst(response);
    } catch (e) {
      if (reachable !== false) log.warn("control-plane-unreachable", { error: e });
      reachable = false;
    }
    if (!stopped) timer = env.clock.setTimer(intervalMs, () => void beat());
  };
  void beat();

  return {
    firstBeat,
    stop: () => {
      stopped = true;
      timer?.cancel();
    },
  };
}
