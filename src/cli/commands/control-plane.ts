/**
 * `borealis control-plane`: the control plane as its own process — the embedded store in a data
 * directory and the HTTP API on a loopback address. (`borealis up` runs the same thing in-process.)
 */
import * as path from "node:path";
import { realEnv } from "../../env/real.js";
import { parseHostPort } from "../../core/types.js";
import { ControlPlane } from "../../control-plane/control-plane.js";
import { EmbeddedKv } from "../../control-plane/embedded-kv.js";
import { startControlPlaneServer } from "../../control-plane/http-server.js";
import { DEFAULT_CONTROL_PLANE_PORT, DEFAULT_HEARTBEAT_TIMEOUT_MS } from "../../control-plane/api.js";
import { convertFlag, intFlag, out, stringFlag, type Command } from "../command.js";
import { onShutdown } from "../lifecycle.js";
import { requireLoopback } from "../addresses.js";

export const controlPlaneCommand: Command = {
  name: "control-plane",
  summary: "run the control plane (volume metadata, placement, epochs) as its own process",
  usage: "borealis control-plane --data DIR [--listen HOST:PORT] [--heartbeat-timeout-ms MS]",
  description: [
    "Runs the control plane: the registry of storage nodes, volumes with their protection groups and",
    "segment placement (6 segments per PG on 6 nodes, 2 in each of 3 AZs), volume and membership epochs,",
    "and the writer record. Its state is one file in DIR (kv.json), rewritten atomically on every change.",
    "It serves a JSON API over HTTP on a loopback address (GET /health, /v1/nodes, /v1/volumes …).",
    "Prints one line when ready; SIGINT or SIGTERM stops it cleanly.",
  ].join("\n"),
  flags: {
    data: { type: "string", valueName: "DIR", required: true, description: "directory for the control plane's state (created if missing)" },
    listen: { type: "string", valueName: "HOST:PORT", default: `127.0.0.1:${DEFAULT_CONTROL_PLANE_PORT}`, description: "loopback address to serve the HTTP API on; port 0 picks a free one" },
    "heartbeat-timeout-ms": { type: "string", valueName: "MS", default: String(DEFAULT_HEARTBEAT_TIMEOUT_MS), description: "a storage node not heard from for this long is not alive" },
  },
  examples: [
    "borealis control-plane --data ./cp --listen 127.0.0.1:7070",
  ],
  async run(flags) {
    const dataDir = path.resolve(stringFlag(flags, "data"));
    const listen = convertFlag(flags, "listen", (t) => requireLoopback(parseHostPort(t)));
    const heartbeatTimeoutMs = intFlag(flags, "heartbeat-timeout-ms", 100, 600_000);
    const shutdown = onShutdown("borealis control-plane");
    const env = realEnv();
    const kv = await EmbeddedKv.open(env, dataDir);
    let server;
    try {
      server = await startControlPlaneServer(env, new ControlPlane(env, kv, { heartbeatTimeoutMs }), { listen });
    } catch (e) {
      await kv.close();
      throw e;
    }
    out(`control plane ready on ${server.url} (data ${dataDir})`);
    const reason = await shutdown.requested;
    env.log.info("control-plane-stopping", { reason });
    await server.close();
    await kv.close();
    shutdown.dispose();
    out("control plane stopped");
    return 0;
  },
};
