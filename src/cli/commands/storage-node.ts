/**
 * `borealis storage-node`: one storage node as a process (`runStorageNode`, src/storage/node-process.ts),
 * with the CLI's part around it: flags, one "ready" line on stdout (which `borealis up` and scripts
 * wait for), and a clean close on SIGINT, SIGTERM or when the supervising `borealis up` goes away.
 */
import * as path from "node:path";
import { realEnv } from "../../env/real.js";
import { formatHostPort, parseHostPort } from "../../core/types.js";
import { parseAz, parseNodeId } from "../../control-plane/api.js";
import { normalizeControlPlaneUrl } from "../../control-plane/client.js";
import { runStorageNode } from "../../storage/node-process.js";
import { convertFlag, optionalStringFlag, out, stringFlag, type Command } from "../command.js";
import { onShutdown } from "../lifecycle.js";
import { requireLoopback } from "../addresses.js";

export const storageNodeCommand: Command = {
  name: "storage-node",
  summary: "run one storage node (hosts segments; hot log, page store, storage protocol)",
  usage: "borealis storage-node --id ID --az AZ --data DIR --listen HOST:PORT [--control-plane URL] [--advertise HOST:PORT]",
  description: [
    "Runs one storage node: it hosts segments of protection groups, appends the writer's redo records to",
    "its hot log and acknowledges them once durable, materializes pages in the background and serves",
    "page reads, over the storage protocol (docs/wire-protocol.md) on a loopback address.",
    "With --control-plane it registers there and heartbeats, so volumes can place segments on it.",
    "Prints one line when ready; SIGINT or SIGTERM closes it cleanly.",
  ].join("\n"),
  flags: {
    id: { type: "string", valueName: "ID", required: true, description: "the node's identity, e.g. n1 (letters, digits, . _ -)" },
    az: { type: "string", valueName: "AZ", required: true, description: "availability zone label, e.g. a; placement puts 2 segments of a PG in each of 3 AZs" },
    data: { type: "string", valueName: "DIR", required: true, description: "the node's data directory (hot log, page store), created if missing" },
    listen: { type: "string", valueName: "HOST:PORT", required: true, description: "loopback address for the storage protocol; port 0 picks a free one" },
    "control-plane": { type: "string", valueName: "URL", description: "control plane to register with and heartbeat to, e.g. http://127.0.0.1:7070", defaultText: "none: the node runs standalone" },
    advertise: { type: "string", valueName: "HOST:PORT", description: "address others should use to reach this node, when it differs from --listen", defaultText: "the bound address" },
  },
  examples: [
    "borealis storage-node --id n1 --az a --data ./nodes/n1 --listen 127.0.0.1:7101 --control-plane http://127.0.0.1:7070",
  ],
  async run(flags) {
    const nodeId = convertFlag(flags, "id", parseNodeId);
    const az = convertFlag(flags, "az", parseAz);
    const dataDir = path.resolve(stringFlag(flags, "data"));
    const listen = convertFlag(flags, "listen", (t) => requireLoopback(parseHostPort(t)));
    const controlPlaneUrl = optionalStringFlag(flags, "control-plane") === undefined ? undefined
      : convertFlag(flags, "control-plane", normalizeControlPlaneUrl);
    const advertise = optionalStringFlag(flags, "advertise") === undefined ? undefined
      : convertFlag(flags, "advertise", parseHostPort);

    const shutdown = onShutdown(`borealis storage-node ${nodeId}`);
    const base = realEnv();
    const env = { ...base, log: base.log.child({ node: nodeId }) };
    await env.disk.mkdirp(dataDir); // the help promises it; runStorageNode may then assume it exists
    const node = await runStorageNode(env, {
      nodeId, az, dataDir, listen,
      ...(controlPlaneUrl === undefined ? {} : { controlPlaneUrl }),
      ...(advertise === undefined ? {} : { advertise }),
    });
    const registered = controlPlaneUrl === undefined ? "standalone (no control plane)" : `registering with ${controlPlaneUrl}`;
    out(`storage node ${nodeId} (AZ ${az}) ready on ${formatHostPort(node.address)}, data ${dataDir}, ${registered}`);
    const reason = await shutdown.requested;
    env.log.info("storage-node-stopping", { reason });
    await node.close();
    shutdown.dispose();
    out(`storage node ${nodeId} stopped`);
    return 0;
  },
};
