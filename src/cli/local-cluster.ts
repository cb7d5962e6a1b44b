/**
 * The local cluster `borealis up` runs, as an ordered list of services. Each service starts, may hand
 * something to the services after it (the control plane hands its URL and API), describes itself for
 * the summary, and stops; `up` starts them in order and stops them in reverse.
 *
 *   1. control plane — in the `up` process: embedded store in DIR/control-plane, HTTP API on loopback
 *   2. storage nodes — six child processes (`borealis storage-node`), supervised, ready once each has
 *      heartbeated to the control plane
 *   3. writer — a supervised child process (`borealis writer`) that creates or opens the volume,
 *      recovers it and serves libSQL clients on 127.0.0.1:PORT (default 8080)
 */
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { Env } from "../env/env.js";
import { assert } from "../core/assert.js";
import { formatHostPort } from "../core/types.js";
import { isBorealisError } from "../core/errors.js";
import type { ControlPlaneApi } from "../control-plane/api.js";
import { ControlPlane } from "../control-plane/control-plane.js";
import { EmbeddedKv } from "../control-plane/embedded-kv.js";
import { startControlPlaneServer } from "../control-plane/http-server.js";
import type { ClusterLayout } from "./cluster-layout.js";
import { Supervisor, type ChildStatus, type SupervisorEvent } from "./supervisor.js";
import { table } from "./format.js";

/** This CLI's entry point, which storage-node children run. Resolved from this file, so any outDir works. */
export const MAIN_SCRIPT = fileURLToPath(new URL("./main.js", import.meta.url));
// Children start with this process's Node flags (process.execArgv), as cluster.fork does: `node
// --cpu-prof dist/src/cli/main.js up` profiles every process of the cluster.

/** A node that exits this many times before it ever heartbeats fails `up` instead of looping. */
const MAX_STARTUP_EXITS = 3;
const READY_POLL_MS = 100;

export interface ClusterContext {
  readonly env: Env;
  readonly dataDir: string;
  readonly layout: ClusterLayout;
  /** Aborted by Ctrl-C: services stop waiting and fail with `Interrupted`. */
  readonly signal: AbortSignal;
  readonly readyTimeoutMs: number;
  /** One line for the operator about something that happened (stderr). */
  readonly report: (line: string) => void;
  /** The writer's endpoint and volume (`borealis up --port`, `--cache-mb`). */
  readonly writer: { readonly port: number; readonly volume: string; readonly cacheMb: number };
  /** Set by the control-plane service, for every service after it. */
  controlPlane?: { readonly url: string; readonly api: ControlPlaneApi };
}

export interface RunningService {
  readonly name: string;
  /** Lines for the summary `up` prints once everything is running. */
  summary(): string[];
  stop(): Promise<void>;
}

export interface ClusterService {
  readonly name: string;
  start(ctx: ClusterContext): Promise<RunningService>;
}

/** Thrown when Ctrl-C arrives while a service is still starting. */
export class Interrupted extends Error {
  override name = "Interrupted";
}

/** Shows a path relative to the current directory when it is inside it: shorter summaries. */
export function displayPath(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel.length > 0 && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : p;
}

// ---------------------------------------------------------------------------------- control plane

export const controlPlaneService: ClusterService = {
  name: "control plane",
  async start(ctx) {
    const stateDir = path.join(ctx.dataDir, "control-plane");
    const kv = await EmbeddedKv.open(ctx.env, stateDir);
    const api = new ControlPlane(ctx.env, kv);
    let server;
    try {
      server = await startControlPlaneServer(ctx.env, api, { listen: ctx.layout.controlPlane });
    } catch (e) {
      await kv.close();
      if (isBorealisError(e) && /in use/.test(e.message)) {
        throw new Error(`${e.message} (is another \`borealis up\` running on ${displayPath(ctx.dataDir)}, or something else on that port?)`);
      }
      throw e;
    }
    ctx.controlPlane = { url: server.url, api };
    return {
      name: "control plane",
      summary: () => [
        `control plane  ${server.url}  (in this process, pid ${process.pid}; state in ${displayPath(stateDir)})`,
      ],
      stop: async () => {
        await server.close();
        await kv.close();
      },
    };
  },
};

// ---------------------------------------------------------------------------------- storage nodes

export const storageNodesService: ClusterService = {
  name: "storage nodes",
  async start(ctx) {
    const cp = ctx.controlPlane;
    assert(cp !== undefined, "storage nodes start after the control plane");
    let ready = false;
    const labels = new Map(ctx.layout.nodes.map((n) => [n.id, `storage node ${n.id}`]));
    const onEvent = (e: SupervisorEvent): void => {
      // Before the cluster is up, failures are reported once, by the readiness wait, with their cause.
      if (!ready) return;
      const label = labels.get(e.key) ?? e.key;
      if (e.type === "started") ctx.report(`${label} restarted (pid ${e.pid})`);
      else if (e.restartInMs !== null) {
        const how = e.error ?? (e.signal !== null ? `signal ${e.signal}` : `code ${e.code}`);
        ctx.report(`${label} (pid ${e.pid ?? "?"}) exited unexpectedly (${how}); restarting in ${(e.restartInMs / 1000).toFixed(1)} s` +
          ` — see ${displayPath(path.join(ctx.dataDir, "logs", `${e.key}.log`))}`);
      }
    };
    const supervisor = new Supervisor(ctx.layout.nodes.map((n) => ({
      key: n.id,
      label: labels.get(n.id)!,
      command: process.execPath,
      args: [
        ...process.execArgv, MAIN_SCRIPT, "storage-node", "--id", n.id, "--az", n.az,
        "--data", path.join(ctx.dataDir, "nodes", n.id),
        "--listen", formatHostPort({ host: n.host, port: n.port }),
        "--control-plane", cp.url,
      ],
      logFile: path.join(ctx.dataDir, "logs", `${n.id}.log`),
    })), { clock: ctx.env.clock, onEvent });
    supervisor.start();
    try {
      await waitForHeartbeats(ctx, cp.api, supervisor);
    } catch (e) {
      await supervisor.stop();
      throw e;
    }
    ready = true;
    return {
      name: "storage nodes",
      summary: () => table(
        ["NODE", "AZ", "ADDRESS", "PID", "DATA", "LOG"],
        ctx.layout.nodes.map((n) => {
          const s = supervisor.status(n.id);
          return [n.id, n.az, formatHostPort({ host: n.host, port: n.port }), s.pid === null ? "(restarting)" : String(s.pid),
            displayPath(path.join(ctx.dataDir, "nodes", n.id)), displayPath(s.logFile)];
        }),
      ),
      stop: () => supervisor.stop(),
    };
  },
};

async function waitForHeartbeats(ctx: ClusterContext, api: ControlPlaneApi, supervisor: Supervisor): Promise<void> {
  const deadline = ctx.env.clock.nowMs() + ctx.readyTimeoutMs;
  // Bounded by the deadline: each pass sleeps READY_POLL_MS.
  for (;;) {
    if (ctx.signal.aborted) throw new Interrupted("interrupted while waiting for storage nodes");
    const alive = new Set((await api.listNodes()).filter((n) => n.alive).map((n) => n.nodeId as string));
    const pending = ctx.layout.nodes.filter((n) => !alive.has(n.id));
    if (pending.length === 0) return;
    for (const n of pending) {
      const s = supervisor.status(n.id);
      if (s.exits >= MAX_STARTUP_EXITS) throw new Error(startupFailure(s, `exited ${s.exits} times before it became ready`));
    }
    if (ctx.env.clock.nowMs() > deadline) {
      const first = supervisor.status(pending[0]!.id);
      throw new Error(startupFailure(first,
        `did not heartbeat to the control plane within ${ctx.readyTimeoutMs} ms` +
        (pending.length > 1 ? ` (nor did ${pending.slice(1).map((n) => n.id).join(", ")})` : "")));
    }
    await ctx.env.clock.sleep(READY_POLL_MS);
  }
}

function startupFailure(s: ChildStatus, what: string): string {
  const exit = s.lastExit === null ? "" : ` (last exit: ${s.lastExit.error ?? (s.lastExit.signal !== null ? `signal ${s.lastExit.signal}` : `code ${s.lastExit.code}`)})`;
  // Its own error line is the most useful; the JSON log lines around it less so.
  const tail = s.tail.filter((l) => !l.startsWith("---")).slice(-5);
  return [
    `${s.label} ${what}${exit}.`,
    ...(tail.length > 0 ? ["Its last output:", ...tail.map((l) => `    ${l}`)] : []),
    `Full log: ${displayPath(s.logFile)}`,
  ].join("\n");
}

// ---------------------------------------------------------------------------------------- writer

/**
 * The SQL writer of the cluster's volume, a supervised child process (`borealis writer`): a crash is
 * followed by a restart at the same address, which recovers the volume (invariant 8) and serves again,
 * so applications keep their URL. Ready once its endpoint answers `GET /health`.
 */
export const writerService: ClusterService = {
  name: "writer",
  async start(ctx) {
    const cp = ctx.controlPlane;
    assert(cp !== undefined, "the writer starts after the control plane");
    const listen = formatHostPort({ host: "127.0.0.1", port: ctx.writer.port });
    const url = `http://${listen}`;
    let ready = false;
    const logFile = path.join(ctx.dataDir, "logs", "writer.log");
    const supervisor = new Supervisor([{
      key: "writer",
      label: "writer",
      command: process.execPath,
      args: [
        ...process.execArgv, MAIN_SCRIPT, "writer", "--control-plane", cp.url, "--volume", ctx.writer.volume, "--listen", listen,
        "--cache-mb", String(ctx.writer.cacheMb),
      ],
      logFile,
      // A writer that served and then crashed is no crash loop: it comes back after the shortest delay
      // every time (the restart target is about a second), not after a backoff grown by earlier crashes.
      readyLine: /^writer of volume .* ready on /,
    }], {
      clock: ctx.env.clock,
      backoff: { initialMs: 100 },
      onEvent: (e) => {
        if (!ready) return;
        if (e.type === "started") ctx.report(`writer restarted (pid ${e.pid}); it recovers the volume and serves ${url} again`);
        else if (e.restartInMs !== null) {
          const how = e.error ?? (e.signal !== null ? `signal ${e.signal}` : `code ${e.code}`);
          ctx.report(`writer (pid ${e.pid ?? "?"}) exited unexpectedly (${how}); restarting in ${(e.restartInMs / 1000).toFixed(1)} s — see ${displayPath(logFile)}`);
        }
      },
    });
    supervisor.start();
    try {
      await waitForHealth(ctx, url, supervisor);
    } catch (e) {
      await supervisor.stop();
      throw e;
    }
    ready = true;
    return {
      name: "writer",
      summary: () => {
        const s = supervisor.status("writer");
        return [
          `writer         ${url}  (volume ${ctx.writer.volume}, pid ${s.pid ?? "(restarting)"}, log ${displayPath(logFile)})`,
          "",
          "Connect with the libSQL client you already use:",
          `    import { createClient } from "@libsql/client";`,
          `    const db = createClient({ url: "${url}" });`,
          `or the shell:  npx borealis sql ${url}`,
        ];
      },
      stop: () => supervisor.stop(),
    };
  },
};

async function waitForHealth(ctx: ClusterContext, url: string, supervisor: Supervisor): Promise<void> {
  const deadline = ctx.env.clock.nowMs() + ctx.readyTimeoutMs + 30_000;
  for (;;) {
    if (ctx.signal.aborted) throw new Interrupted("interrupted while waiting for the writer");
    try {
      const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    const s = supervisor.status("writer");
    if (s.exits >= MAX_STARTUP_EXITS) throw new Error(startupFailure(s, `exited ${s.exits} times before it became ready`));
    if (ctx.env.clock.nowMs() > deadline) throw new Error(startupFailure(s, `did not answer ${url}/health in time`));
    await ctx.env.clock.sleep(READY_POLL_MS);
  }
}

/** What `borealis up` starts, in order; stopped in reverse. */
export const CLUSTER_SERVICES: readonly ClusterService[] = [controlPlaneService, storageNodesService, writerService];
