/**
 * Segment placement: which six storage nodes host a protection group's six segments.
 *
 * The rule (DESIGN.md, "segment"; Aurora §2.1): six segments on six distinct nodes, two in each of three
 * availability zones. With a 4/6 write quorum and a 3/6 read quorum, losing a whole AZ (2 segments)
 * plus one more node still leaves a read quorum, and losing an AZ alone still leaves a write quorum
 * (invariant 12). Placing two segments of one PG on one node, or three in one AZ, would silently break
 * that arithmetic, so the result is asserted, not just computed.
 *
 * Among the nodes that satisfy the rule, the least loaded (fewest segments) win, ties broken by AZ and
 * node id so the choice is deterministic and testable. A pure function: the caller supplies the live
 * nodes and their current load. A growing volume may also use nodes that are down now, within limits
 * (`placeGrowingProtectionGroup`).
 */
import { assert } from "../core/assert.js";
import { BorealisError, isBorealisError } from "../core/errors.js";
import type { Az, NodeId } from "../core/types.js";

export const SEGMENTS_PER_PG = 6;
export const AZS_PER_PG = 3;
export const SEGMENTS_PER_AZ = 2;

export interface PlacementCandidate {
  readonly nodeId: NodeId;
  readonly az: Az;
  /** Segments the node hosts already. */
  readonly load: number;
}

export interface SegmentPlacement {
  readonly nodeId: NodeId;
  readonly az: Az;
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Places `pgCount` protection groups one after another, each seeing the load the previous ones added.
 * Throws PLACEMENT_IMPOSSIBLE when fewer than three AZs have two candidate nodes each.
 */
export function placeProtectionGroups(candidates: readonly PlacementCandidate[], pgCount: number): SegmentPlacement[][] {
  assert(Number.isSafeInteger(pgCount) && pgCount >= 0, "pgCount must be a non-negative integer");
  const load = new Map<NodeId, number>();
  const byAz = new Map<Az, NodeId[]>();
  for (const c of candidates) {
    assert(!load.has(c.nodeId), `placement: node ${c.nodeId} listed twice`);
    assert(Number.isSafeInteger(c.load) && c.load >= 0, `placement: node ${c.nodeId} has load ${c.load}`);
    load.set(c.nodeId, c.load);
    const list = byAz.get(c.az) ?? [];
    list.push(c.nodeId);
    byAz.set(c.az, list);
  }
  const eligible = [...byAz.entries()].filter(([, nodes]) => nodes.length >= SEGMENTS_PER_AZ);
  if (eligible.length < AZS_PER_PG) throw impossible(byAz);

  const result: SegmentPlacement[][] = [];
  for (let g = 0; g < pgCount; g++) {
    const ranked = eligible.map(([az, nodes]) => {
      const sorted = [...nodes].sort((a, b) => load.get(a)! - load.get(b)! || byText(a, b));
      const chosen = sorted.slice(0, SEGMENTS_PER_AZ);
      return { az, chosen, cost: chosen.reduce((sum, n) => sum + load.get(n)!, 0) };
    });
    ranked.sort((a, b) => a.cost - b.cost || byText(a.az, b.az));
    const pg: SegmentPlacement[] = [];
    for (const { az, chosen } of ranked.slice(0, AZS_PER_PG)) {
      for (const nodeId of chosen) {
        pg.push({ nodeId, az });
        load.set(nodeId, load.get(nodeId)! + 1);
      }
    }
    pg.sort((a, b) => byText(a.az, b.az) || byText(a.nodeId, b.nodeId));
    checkPlacement(pg);
    result.push(pg);
  }
  assert(result.length === pgCount, "placement: one placement per protection group");
  return result;
}

/** A registered node and whether it is alive now (heartbeats), for growing a volume. */
export interface GrowthCandidate extends PlacementCandidate {
  readonly alive: boolean;
}

/** Segments of a PG that must be on live nodes for a new PG to be writable at once (4 of 6). */
export const LIVE_SEGMENTS_TO_GROW = 4;
/** Added to a dead node's load so that any live node is preferred to it. */
const DEAD_PENALTY = 1_000_000_000;

/**
 * Places one new protection group of a volume that is growing. Live nodes as for a new volume when
 * there are enough of them. Otherwise registered nodes that are down now may receive segments too —
 * fewest dead nodes first — provided a write quorum of the six is live: the new PG is writable at
 * once, and a dead node opens its segment when it comes back (the writer's shipper opens a segment a
 * node does not host and copies it what it lacks). Without this, one dead node out of six blocked
 * growth, and with it every commit (the new PG's records hold VDL back), although every existing PG
 * still had a write quorum.
 */
export function placeGrowingProtectionGroup(candidates: readonly GrowthCandidate[]): SegmentPlacement[] {
  const live = candidates.filter((c) => c.alive).map(({ nodeId, az, load }) => ({ nodeId, az, load }));
  try {
    return placeProtectionGroups(live, 1)[0]!;
  } catch (e) {
    if (!isBorealisError(e, "PLACEMENT_IMPOSSIBLE")) throw e;
  }
  const penalized = candidates.map(({ nodeId, az, load, alive }) => ({ nodeId, az, load: load + (alive ? 0 : DEAD_PENALTY) }));
  let pg: SegmentPlacement[];
  try {
    pg = placeProtectionGroups(penalized, 1)[0]!;
  } catch (e) {
    if (!isBorealisError(e, "PLACEMENT_IMPOSSIBLE")) throw e;
    throw impossible(groupByAz(live));
  }
  const alive = new Set(live.map((c) => c.nodeId));
  const liveCount = pg.filter((s) => alive.has(s.nodeId)).length;
  if (liveCount < LIVE_SEGMENTS_TO_GROW) throw impossible(groupByAz(live));
  return pg;
}

function groupByAz(nodes: readonly PlacementCandidate[]): Map<Az, NodeId[]> {
  const byAz = new Map<Az, NodeId[]>();
  for (const n of nodes) byAz.set(n.az, [...(byAz.get(n.az) ?? []), n.nodeId]);
  return byAz;
}

/** Asserts the placement rule (invariant 12 rests on it): 6 distinct nodes, 2 in each of 3 AZs. */
export function checkPlacement(pg: readonly SegmentPlacement[]): void {
  assert(pg.length === SEGMENTS_PER_PG, 12, `a protection group has ${SEGMENTS_PER_PG} segments, not ${pg.length}`);
  assert(new Set(pg.map((s) => s.nodeId)).size === SEGMENTS_PER_PG, 12, "a protection group's segments are on distinct nodes");
  const perAz = new Map<Az, number>();
  for (const s of pg) perAz.set(s.az, (perAz.get(s.az) ?? 0) + 1);
  assert(perAz.size === AZS_PER_PG, 12, `a protection group spans ${AZS_PER_PG} AZs, not ${perAz.size}`);
  for (const [az, n] of perAz) assert(n === SEGMENTS_PER_AZ, 12, `AZ ${az} holds ${n} segments of one protection group`);
}

function impossible(byAz: ReadonlyMap<Az, readonly NodeId[]>): BorealisError {
  const azs = [...byAz.entries()].sort(([a], [b]) => byText(a, b));
  const seen = azs.length === 0 ? "none" : azs.map(([az, nodes]) => `AZ ${az}: ${[...nodes].sort(byText).join(", ")}`).join("; ");
  return new BorealisError(
    "PLACEMENT_IMPOSSIBLE",
    `a protection group needs ${SEGMENTS_PER_AZ} live storage nodes in each of ${AZS_PER_PG} AZs; live nodes: ${seen}`,
  );
}
