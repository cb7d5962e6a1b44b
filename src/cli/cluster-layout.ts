/**
 * The shape of a local cluster, persisted as `<DIR>/cluster.json` by the first `borealis up` on DIR and
 * read back by every later one, so that the same directory always brings back the same cluster: node
 * ids, AZs and ports. Ports matter because the control plane stores each node's address and volumes
 * keep their segments on node ids; a node that came back on another port would be a moved node.
 */
import * as path from "node:path";
import type { Env } from "../env/env.js";
import { parseAz, parseNodeId } from "../control-plane/api.js";

export interface ClusterLayout {
  readonly format: "borealis-cluster";
  readonly version: 1;
  readonly controlPlane: { readonly host: string; readonly port: number };
  readonly nodes: readonly { readonly id: string; readonly az: string; readonly host: string; readonly port: number }[];
}

export const LAYOUT_FILE = "cluster.json";
const HOST = "127.0.0.1";
/** n1..n6 in AZs a, a, b, b, c, c: the smallest cluster the placement rule (2 per AZ × 3 AZs) accepts. */
const NODE_AZS = ["a", "a", "b", "b", "c", "c"] as const;

export function defaultLayout(controlPlanePort: number, storageBasePort: number): ClusterLayout {
  return {
    format: "borealis-cluster",
    version: 1,
    controlPlane: { host: HOST, port: controlPlanePort },
    nodes: NODE_AZS.map((az, i) => ({ id: `n${i + 1}`, az, host: HOST, port: storageBasePort + i })),
  };
}

export interface LayoutRequest {
  /** Only the ports the user gave explicitly; absent ones take the persisted or default values. */
  readonly controlPlanePort?: number;
  readonly storageBasePort?: number;
}

/**
 * Reads DIR/cluster.json, or creates it from the request (and defaults) when absent. Explicit ports that
 * contradict an existing layout are an error rather than silently ignored.
 */
export async function loadOrCreateLayout(
  env: Env, dataDir: string, request: LayoutRequest, defaults: { controlPlanePort: number; storageBasePort: number },
): Promise<{ layout: ClusterLayout; created: boolean }> {
  const file = path.join(dataDir, LAYOUT_FILE);
  if (!(await env.disk.exists(file))) {
    const layout = defaultLayout(request.controlPlanePort ?? defaults.controlPlanePort, request.storageBasePort ?? defaults.storageBasePort);
    await env.disk.mkdirp(dataDir);
    await env.disk.writeFileAtomic(file, new TextEncoder().encode(JSON.stringify(layout, null, 2) + "\n"));
    return { layout, created: true };
  }
  const layout = parseLayout(new TextDecoder().decode(await env.disk.readFile(file)), file);
  if (request.controlPlanePort !== undefined && request.controlPlanePort !== layout.controlPlane.port) {
    throw new Error(`${file} fixes the control plane port at ${layout.controlPlane.port}, not ${request.controlPlanePort}; ` +
      "drop the flag, or use another --data directory for a new cluster");
  }
  if (request.storageBasePort !== undefined && request.storageBasePort !== layout.nodes[0]?.port) {
    throw new Error(`${file} fixes the storage ports at ${layout.nodes.map((n) => n.port).join(", ")}; ` +
      "drop --storage-base-port, or use another --data directory for a new cluster");
  }
  return { layout, created: false };
}

function parseLayout(text: string, file: string): ClusterLayout {
  const bad = (why: string): Error => new Error(`${file} is not a valid cluster layout (${why}); move it away to start a new cluster`);
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    throw bad("not JSON");
  }
  const l = o as Partial<ClusterLayout> | null;
  if (l === null || typeof l !== "object" || l.format !== "borealis-cluster" || l.version !== 1) throw bad("unknown format");
  const isPort = (p: unknown): p is number => Number.isInteger(p) && (p as number) > 0 && (p as number) < 65536;
  if (typeof l.controlPlane?.host !== "string" || !isPort(l.controlPlane.port)) throw bad("bad controlPlane");
  if (!Array.isArray(l.nodes) || l.nodes.length === 0 || l.nodes.length > 64) throw bad("bad nodes");
  for (const n of l.nodes) {
    try {
      parseNodeId(n?.id);
      parseAz(n?.az);
    } catch (e) {
      throw bad(e instanceof Error ? e.message : String(e));
    }
    if (typeof n.host !== "string" || !isPort(n.port)) throw bad(`bad address for node ${n.id}`);
  }
  if (new Set(l.nodes.map((n) => n.id)).size !== l.nodes.length) throw bad("duplicate node ids");
  return l as ClusterLayout;
}
