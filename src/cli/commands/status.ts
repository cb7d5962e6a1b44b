/**
 * `borealis status`: what is running and how it is doing — storage nodes (from the control plane, and
 * from each node itself over the storage protocol), volumes with their writer's VCL, VDL and epoch
 * (from the writer's own `GET /health`, at the endpoint the control plane records), and where each
 * protection group's six segments live with their SCLs and epochs. Aligned tables for people,
 * `--json` for scripts.
 */
import { consoleLogger, realEnv } from "../../env/real.js";
import type { Env } from "../../env/env.js";
import { DEFAULT_CONTROL_PLANE_URL, type StorageNodeInfo, type Volume } from "../../control-plane/api.js";
import { ControlPlaneClient, normalizeControlPlaneUrl } from "../../control-plane/client.js";
import type { SegmentState } from "../../wire/messages.js";
import { convertFlag, intFlag, out, type Command } from "../command.js";
import { formatAge, plural, table } from "../format.js";
import { fetchNodeState, type NodeState } from "../node-state.js";

/** Human output shows at most this many protection groups per volume; --json shows all. */
const MAX_PGS_SHOWN = 32;

/** A volume's writer as it reports itself (`GET /health`), or why it could not be asked. */
export type WriterState =
  | {
    readonly reachable: true;
    readonly endpoint: string;
    /** "ok", or "unavailable" (the writer answered 503: fenced, or its commits stopped). */
    readonly status: string;
    readonly epoch: number | null;
    readonly vcl: number | null;
    readonly vdl: number | null;
    readonly waitingCommits: number | null;
    /** Why the writer is not ok, when it says (fenced by a newer writer, commits stopped). */
    readonly problem: string | null;
  }
  | { readonly reachable: false; readonly endpoint: string; readonly error: string };

export interface StatusReport {
  readonly controlPlane: { readonly url: string };
  readonly nodes: readonly (StorageNodeInfo & { readonly state: NodeState })[];
  /** `writerState` is null when no writer has registered for the volume. */
  readonly volumes: readonly (Volume & { readonly writerState: WriterState | null })[];
}

/** The writer's /health carries engine and per-PG details; more than this is not a health answer. */
const MAX_HEALTH_BYTES = 4 << 20;

export const statusCommand: Command = {
  name: "status",
  summary: "show storage nodes, volumes (writer VCL/VDL) and segment placement, SCLs and epochs",
  usage: "borealis status [--control-plane URL] [--json] [--timeout-ms MS]",
  description: [
    "Asks the control plane for the storage nodes (id, AZ, address, alive) and the volumes with each",
    "protection group's six segments, then asks every node itself for its segments' SCLs and epochs",
    "(nodeStatus over the storage protocol) and each volume's writer for its VCL, VDL and epoch (GET",
    "/health at the endpoint the control plane records). Prints aligned tables, or one JSON document",
    "with --json.",
    "Exits 1 if the control plane cannot be reached.",
  ].join("\n"),
  flags: {
    "control-plane": { type: "string", valueName: "URL", default: DEFAULT_CONTROL_PLANE_URL, description: "the control plane to ask" },
    json: { type: "boolean", description: "print one machine-readable JSON document instead of tables" },
    "timeout-ms": { type: "string", valueName: "MS", default: "2000", description: "how long to wait for the control plane, each node and each writer" },
  },
  examples: [
    "borealis status",
    "borealis status --json --control-plane http://127.0.0.1:7070",
  ],
  async run(flags) {
    const url = convertFlag(flags, "control-plane", normalizeControlPlaneUrl);
    const timeoutMs = intFlag(flags, "timeout-ms", 1, 600_000);
    const env = realEnv({ log: consoleLogger({ level: process.env["BOREALIS_DEBUG"] === "1" ? "debug" : "error" }) });
    const report = await collectStatus(env, url, timeoutMs);
    if (flags.values["json"] === true) out(JSON.stringify(report, null, 2));
    else for (const line of renderStatus(report)) out(line);
    return 0;
  },
};

export async function collectStatus(env: Env, url: string, timeoutMs: number): Promise<StatusReport> {
  const client = new ControlPlaneClient(url, { timeoutMs });
  const [nodes, volumes] = await Promise.all([client.listNodes(), client.listVolumes()]);
  const [states, writers] = await Promise.all([
    Promise.all(nodes.map((n) => fetchNodeState(env, n.address, timeoutMs))),
    Promise.all(volumes.map((v) => (v.writer === null ? null : fetchWriterState(v.writer.endpoint, timeoutMs)))),
  ]);
  return {
    controlPlane: { url: client.url },
    nodes: nodes.map((n, i) => ({ ...n, state: states[i]! })),
    volumes: volumes.map((v, i) => ({ ...v, writerState: writers[i]! })),
  };
}

/**
 * Asks a writer for its /health. Never throws, and gives up after `timeoutMs` (a writer that is
 * paused or gone must not hold `borealis status` up). A 503 is an answer too: the writer is there
 * and says it is not ok.
 */
export async function fetchWriterState(endpoint: string, timeoutMs: number): Promise<WriterState> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await fetch(`${endpoint.replace(/\/+$/, "")}/health`, { signal });
    const text = await readBounded(res, MAX_HEALTH_BYTES);
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
      body = parsed as Record<string, unknown>;
    } catch {
      return { reachable: false, endpoint, error: `HTTP ${res.status}, not a health report` };
    }
    const num = (k: string): number | null => (typeof body[k] === "number" && Number.isFinite(body[k]) ? body[k] as number : null);
    const str = (k: string): string | null => (typeof body[k] === "string" && body[k] !== "" ? (body[k] as string).slice(0, 500) : null);
    return {
      reachable: true,
      endpoint,
      status: str("status") ?? (res.ok ? "ok" : `HTTP ${res.status}`),
      epoch: num("epoch"),
      vcl: num("vcl"),
      vdl: num("vdl"),
      waitingCommits: num("waitingCommits"),
      problem: str("fenced") ?? str("commitsStopped") ?? str("error"),
    };
  } catch (e) {
    const why = signal.aborted ? `no answer within ${timeoutMs} ms` : describeFetchError(e);
    return { reachable: false, endpoint, error: why };
  }
}

async function readBounded(res: globalThis.Response, maxBytes: number): Promise<string> {
  if (res.body === null) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += chunk.byteLength;
    if (size > maxBytes) throw new Error(`health answer larger than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** fetch says "fetch failed" and keeps the reason (ECONNREFUSED …) in `cause`. */
function describeFetchError(e: unknown): string {
  const cause = e instanceof Error ? e.cause : undefined;
  const code = typeof cause === "object" && cause !== null ? (cause as { code?: unknown }).code : undefined;
  if (typeof code === "string") return code;
  return e instanceof Error ? e.message : String(e);
}

export function renderStatus(report: StatusReport): string[] {
  const lines: string[] = [];
  const alive = report.nodes.filter((n) => n.alive).length;
  lines.push(`Control plane  ${report.controlPlane.url}  (reachable)`, "");

  lines.push(`Storage nodes: ${report.nodes.length}, ${alive} alive`);
  if (report.nodes.length === 0) {
    lines.push("  (none registered yet: start some with `borealis up` or `borealis storage-node`)");
  } else {
    lines.push(...table(
      ["NODE", "AZ", "ADDRESS", "ALIVE", "LAST HEARTBEAT", "SEGMENTS", "NODE SAYS"],
      report.nodes.map((n) => [
        n.nodeId, n.az, n.address, n.alive ? "yes" : "NO", formatAge(n.lastHeartbeatAgeMs), String(n.segmentCount),
        describeNodeState(n.state),
      ]),
    ).map((l) => `  ${l}`));
  }
  lines.push("");

  const byNode = new Map(report.nodes.map((n) => [n.nodeId as string, n]));
  lines.push(`Volumes: ${report.volumes.length}`);
  if (report.volumes.length === 0) lines.push("  (none yet: the writer creates its volume when it starts)");
  for (const v of report.volumes) {
    const writer = v.writer === null ? "no writer yet"
      : `writer ${v.writer.endpoint} (epoch ${v.writer.epoch}${v.writer.epoch < v.volumeEpoch ? ", FENCED" : ""})`;
    lines.push("", `  Volume ${v.volumeId}: ${plural(v.pgs.length, "protection group")} of ${v.pgPages} pages × ${v.pageSize} B, ` +
      `volume epoch ${v.volumeEpoch}, geometry epoch ${v.geometryEpoch}, ${writer}`);
    if (v.writerState !== null) lines.push(`    ${describeWriter(v.writerState)}`);
    const rows: string[][] = [];
    for (const pg of v.pgs.slice(0, MAX_PGS_SHOWN)) {
      const last = pg.geometry.firstPage + pg.geometry.pageCount - 1;
      pg.segments.forEach((s, i) => {
        const node = byNode.get(s.nodeId);
        const seg = node?.state.reachable
          ? node.state.segments.find((x) => x.geometry.volumeId === v.volumeId && x.geometry.pgId === pg.pgId)
          : undefined;
        rows.push([
          i === 0 ? String(pg.pgId) : "", i === 0 ? `${pg.geometry.firstPage}..${last}` : "",
          i === 0 ? String(pg.membershipEpoch) : "",
          s.nodeId, s.az, node === undefined ? "?" : node.alive ? "yes" : "NO",
          ...describeSegment(node?.state, seg, v.volumeEpoch, pg.membershipEpoch),
        ]);
      });
    }
    lines.push(...table(
      ["PG", "PAGES", "MEMBERSHIP EPOCH", "SEGMENT ON", "AZ", "ALIVE", "SCL", "HIGHEST LSN", "EPOCHS (vol/memb)"], rows,
    ).map((l) => `    ${l}`));
    if (v.pgs.length > MAX_PGS_SHOWN) lines.push(`    … and ${v.pgs.length - MAX_PGS_SHOWN} more protection groups (see --json)`);
  }
  return lines;
}

function describeWriter(w: WriterState): string {
  if (!w.reachable) return `Writer unreachable at ${w.endpoint}: ${w.error}`;
  const n = (x: number | null): string => (x === null ? "?" : String(x));
  const waiting = w.waitingCommits === null ? "" : `, ${plural(w.waitingCommits, "commit")} waiting for durability`;
  return `Writer says: ${w.status}${w.problem === null ? "" : ` (${w.problem})`}, VCL ${n(w.vcl)}, VDL ${n(w.vdl)}, epoch ${n(w.epoch)}${waiting}`;
}

function describeNodeState(s: NodeState): string {
  if (!s.reachable) return `unreachable: ${s.error}`;
  return `${s.fenced ? "FENCED (disk error), " : ""}${plural(s.segments.length, "segment")}`;
}

/** SCL, highest LSN and epochs of one segment as its node reports them; "?" when it cannot be asked. */
function describeSegment(state: NodeState | undefined, seg: SegmentState | undefined, volumeEpoch: number, membershipEpoch: number): string[] {
  if (state === undefined || !state.reachable) return ["?", "?", "?"];
  if (seg === undefined) return ["not hosted", "-", "-"];
  const stale = seg.epochs.volumeEpoch < volumeEpoch || seg.epochs.membershipEpoch < membershipEpoch ? " (behind)" : "";
  return [String(seg.scl), String(seg.highestLsn), `${seg.epochs.volumeEpoch}/${seg.epochs.membershipEpoch}${stale}`];
}
