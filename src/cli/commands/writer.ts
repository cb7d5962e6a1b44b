/**
 * `borealis writer`: the SQL writer of one volume as a process (`runWriter`, src/compute/writer.ts):
 * recovers the volume, runs SQLite over it and serves libSQL clients (Hrana over HTTP). `borealis up`
 * runs one as a supervised child; it can also run on its own against any control plane.
 */
import { realEnv } from "../../env/real.js";
import { parseHostPort } from "../../core/types.js";
import { DEFAULT_CONTROL_PLANE_URL, parseVolumeId } from "../../control-plane/api.js";
import { ControlPlaneClient, normalizeControlPlaneUrl } from "../../control-plane/client.js";
import { runWriter } from "../../compute/writer.js";
import { convertFlag, intFlag, optionalStringFlag, out, type Command } from "../command.js";
import { onShutdown } from "../lifecycle.js";
import { requireLoopback } from "../addresses.js";

export const DEFAULT_WRITER_PORT = 8080;
export const DEFAULT_VOLUME = "default";

export const writerCommand: Command = {
  name: "writer",
  summary: "run the SQL writer of a volume and its libSQL endpoint (Hrana over HTTP)",
  usage: "borealis writer [--control-plane URL] [--volume ID] [--listen HOST:PORT] [--cache-mb MB] [--readers N] [--pg-pages N] [--commit-timeout-ms MS]",
  description: [
    "Runs the writer of one volume: it recovers the volume from the storage nodes (new epoch, durable",
    "point from read quorums, everything above it annulled), then runs SQLite over it and serves",
    "@libsql/client at http://HOST:PORT. Every acknowledged commit is on 4 of 6 storage nodes.",
    "The volume is created on first start if the control plane does not know it.",
    "Prints one line when ready; SIGINT or SIGTERM closes it cleanly (commits not yet durable are",
    "answered with COMMIT_OUTCOME_UNKNOWN).",
  ].join("\n"),
  flags: {
    "control-plane": { type: "string", valueName: "URL", default: DEFAULT_CONTROL_PLANE_URL, description: "the control plane that knows the volume and its storage nodes" },
    volume: { type: "string", valueName: "ID", default: DEFAULT_VOLUME, description: "the volume to serve (created if missing)" },
    listen: { type: "string", valueName: "HOST:PORT", default: `127.0.0.1:${DEFAULT_WRITER_PORT}`, description: "loopback address of the libSQL endpoint" },
    "cache-mb": { type: "string", valueName: "MB", default: "256", description: "shared buffer pool size" },
    readers: { type: "string", valueName: "N", defaultText: "1-2 by CPU count", description: "SQLite reader worker threads" },
    "pg-pages": { type: "string", valueName: "N", defaultText: "the control plane's: 262144 (1 GiB of 4 KiB pages)", description: "pages per protection group, when the volume is created here" },
    "commit-timeout-ms": { type: "string", valueName: "MS", default: "30000", description: "a commit not durable by then is answered COMMIT_OUTCOME_UNKNOWN" },
  },
  examples: [
    "borealis writer --control-plane http://127.0.0.1:7070 --listen 127.0.0.1:8080",
  ],
  async run(flags) {
    const controlPlaneUrl = convertFlag(flags, "control-plane", normalizeControlPlaneUrl);
    const volumeId = convertFlag(flags, "volume", (t) => parseVolumeId(t));
    const listen = convertFlag(flags, "listen", (t) => requireLoopback(parseHostPort(t)));
    const cacheMb = intFlag(flags, "cache-mb", 4, 1 << 16);
    const commitTimeoutMs = intFlag(flags, "commit-timeout-ms", 100, 3_600_000);
    const readers = optionalStringFlag(flags, "readers") === undefined ? undefined : intFlag(flags, "readers", 1, 64);
    const pgPages = optionalStringFlag(flags, "pg-pages") === undefined ? undefined : intFlag(flags, "pg-pages", 1, 2 ** 31);

    const shutdown = onShutdown("borealis writer");
    const base = realEnv();
    const env = { ...base, log: base.log.child({ writer: volumeId }) };
    const writer = await runWriter(env, {
      controlPlane: new ControlPlaneClient(controlPlaneUrl),
      volumeId, listen, cacheMb, commitTimeoutMs,
      ...(readers !== undefined ? { readers } : {}),
      ...(pgPages !== undefined ? { pgPages } : {}),
    });
    const r = writer.recovery;
    out(`writer of volume ${volumeId} ready on ${writer.url} (epoch ${r.epoch}, VDL ${r.vdl}, started in ${writer.timings.totalMs} ms: recovery ${writer.timings.recoveryMs} ms)`);
    const reason = await shutdown.requested;
    env.log.info("writer-stopping", { reason });
    await writer.close();
    shutdown.dispose();
    out(`writer of volume ${volumeId} stopped`);
    return 0;
  },
};
