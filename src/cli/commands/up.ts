/**
 * `borealis up`: a whole local cluster in one command (what `npm start` runs). Starts the services of
 * `local-cluster.ts` in order — the control plane in this process, six supervised storage-node child
 * processes, later the writer — prints what is running, and on Ctrl-C stops everything in reverse.
 * The cluster's shape is kept in DIR/cluster.json, so `borealis up` on the same DIR brings the same
 * cluster back.
 */
import { createWriteStream } from "node:fs";
import * as path from "node:path";
import { consoleLogger, realDisk, realEnv } from "../../env/real.js";
import type { LogLevel } from "../../env/env.js";
import { DEFAULT_CONTROL_PLANE_PORT } from "../../control-plane/api.js";
import { err, intFlag, out, stringFlag, type Command, type ParsedFlags } from "../command.js";
import { onShutdown } from "../lifecycle.js";
import { loadOrCreateLayout } from "../cluster-layout.js";
import {
  CLUSTER_SERVICES, Interrupted, displayPath, type ClusterContext, type RunningService,
} from "../local-cluster.js";

const DEFAULT_STORAGE_BASE_PORT = 7101;

export const upCommand: Command = {
  name: "up",
  summary: "run a local cluster: control plane, 6 storage nodes in 3 AZs, the SQL writer (what `npm start` runs)",
  usage: "borealis up [--data DIR] [--port PORT] [--cache-mb MB] [--control-plane-port PORT] [--storage-base-port PORT] [--ready-timeout-ms MS]",
  description: [
    "Starts a complete local cluster and keeps it running until Ctrl-C:",
    "  - the control plane, in this process, on 127.0.0.1:PORT (state in DIR/control-plane);",
    "  - six storage nodes n1..n6 in AZs a, a, b, b, c, c as child processes on consecutive ports",
    "    from the storage base port (data in DIR/nodes/nX, logs in DIR/logs/nX.log);",
    "  - the SQL writer of volume \"default\" as a child process, serving libSQL clients (Hrana over",
    "    HTTP) on 127.0.0.1:PORT (log in DIR/logs/writer.log).",
    "It waits until every node has heartbeated and the writer answers, then prints what is running.",
    "A process that exits unexpectedly is reported and restarted with backoff (0.5 s doubling to 30 s);",
    "a restarted writer recovers the volume and serves at the same URL.",
    "Ctrl-C (SIGINT) or SIGTERM stops the nodes (SIGTERM, then SIGKILL after 5 s), then the control plane.",
    "The first run on DIR records node ids and ports in DIR/cluster.json; later runs bring the same cluster",
    "back with the same data (explicit port flags must then match it).",
  ].join("\n"),
  flags: {
    data: { type: "string", valueName: "DIR", default: ".borealis", description: "the cluster's directory, relative to the current one" },
    port: { type: "string", valueName: "PORT", default: "8080", description: "the writer's libSQL endpoint port on 127.0.0.1" },
    "cache-mb": { type: "string", valueName: "MB", default: "256", description: "the writer's shared buffer pool" },
    "control-plane-port": { type: "string", valueName: "PORT", default: String(DEFAULT_CONTROL_PLANE_PORT), description: "control plane HTTP port on 127.0.0.1 (first run on DIR only)" },
    "storage-base-port": { type: "string", valueName: "PORT", default: String(DEFAULT_STORAGE_BASE_PORT), description: "port of n1 on 127.0.0.1; n2..n6 take the next five (first run on DIR only)" },
    "ready-timeout-ms": { type: "string", valueName: "MS", default: "20000", description: "how long to wait for every storage node to heartbeat before giving up" },
  },
  examples: [
    "borealis up",
    "borealis up --data /tmp/demo --port 9090",
    "borealis up --data /tmp/borealis-demo --control-plane-port 8070 --storage-base-port 8101",
  ],
  run: runUp,
};

async function runUp(flags: ParsedFlags): Promise<number> {
  const dataDir = path.resolve(stringFlag(flags, "data"));
  const controlPlanePort = intFlag(flags, "control-plane-port", 1, 65535);
  const storageBasePort = intFlag(flags, "storage-base-port", 1, 65535 - 5);
  const readyTimeoutMs = intFlag(flags, "ready-timeout-ms", 100, 600_000);
  const writerPort = intFlag(flags, "port", 1, 65535);
  const cacheMb = intFlag(flags, "cache-mb", 4, 1 << 16);
  const shutdown = onShutdown("borealis up");

  // The in-process control plane logs to a file: the terminal is for the summary and for events.
  const logsDir = path.join(dataDir, "logs");
  await realDisk.mkdirp(logsDir);
  const logFile = path.join(logsDir, "control-plane.log");
  const logStream = createWriteStream(logFile, { flags: "a" });
  logStream.on("error", () => {});
  const requested = process.env["BOREALIS_LOG"];
  const level: LogLevel = requested === "debug" || requested === "warn" || requested === "error" ? requested : "info";
  const env = realEnv({ log: consoleLogger({ level, write: (line) => logStream.write(line + "\n") }) });

  try {
    const { layout, created } = await loadOrCreateLayout(env, dataDir, {
      ...(flags.given.has("control-plane-port") ? { controlPlanePort } : {}),
      ...(flags.given.has("storage-base-port") ? { storageBasePort } : {}),
    }, { controlPlanePort, storageBasePort });
    out(`${created ? "Creating" : "Starting"} the local cluster in ${displayPath(dataDir)} …`);

    const ctx: ClusterContext = {
      env, dataDir, layout, signal: shutdown.signal, readyTimeoutMs, report: (line) => err(`borealis up: ${line}`),
      writer: { port: writerPort, volume: "default", cacheMb },
    };
    const running: RunningService[] = [];
    try {
      for (const service of CLUSTER_SERVICES) {
        if (shutdown.signal.aborted) throw new Interrupted(`interrupted before starting the ${service.name}`);
        running.push(await service.start(ctx));
      }
    } catch (e) {
      await stopAll(running);
      if (e instanceof Interrupted || shutdown.signal.aborted) {
        out("Stopped before the cluster was up.");
        return 130;
      }
      throw e;
    }

    out("");
    out(`Borealis is running (data in ${displayPath(dataDir)}, control-plane log ${displayPath(logFile)}):`);
    out("");
    for (const service of running) {
      for (const line of service.summary()) out(`  ${line}`);
      out("");
    }
    out("  borealis status   nodes, volumes and segments");
    out("  Ctrl-C            stop the cluster; `borealis up` again brings it back");

    const reason = await shutdown.requested;
    out("");
    out(`${reason}: stopping the cluster …`);
    await stopAll(running);
    out("Cluster stopped.");
    return 0;
  } finally {
    shutdown.dispose();
    await new Promise<void>((resolve) => logStream.end(() => resolve()));
  }
}

/** Stops services in reverse start order; one that fails to stop does not keep the others running. */
async function stopAll(running: RunningService[]): Promise<void> {
  for (const service of [...running].reverse()) {
    try {
      await service.stop();
    } catch (e) {
      err(`borealis up: stopping the ${service.name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  running.length = 0;
}
