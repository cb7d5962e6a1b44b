/**
 * Deliberately naive versions of the quorum math (etcd raft's quick_test "dumb" implementations):
 * quadratic, allocation-happy, written straight from the definitions in DESIGN.md so that the fast
 * versions in src/quorum/ can be checked against them.
 */
import type { NodeId } from "../../src/core/types.js";
import type { QuorumSet, SimpleQuorumSet } from "../../src/quorum/quorum-set.js";

function configs(set: QuorumSet): readonly SimpleQuorumSet[] {
  return set.kind === "simple" ? [set] : set.configs;
}

/** Does a write quorum of `set` have SCL ≥ lsn? */
export function naiveHeldByWriteQuorum(set: QuorumSet, scl: ReadonlyMap<NodeId, number>, lsn: number): boolean {
  return configs(set).every((c) => c.members.filter((m) => (scl.get(m) ?? 0) >= lsn).length >= c.writeQuorum);
}

/** The highest L among 0 and the SCLs that a write quorum holds. */
export function naiveCommittedPoint(set: QuorumSet, scl: ReadonlyMap<NodeId, number>): number {
  let best = 0;
  for (const candidate of [0, ...scl.values()]) {
    if (candidate > best && naiveHeldByWriteQuorum(set, scl, candidate)) best = candidate;
  }
  return best;
}

export interface NaiveRecord {
  readonly lsn: number;
  readonly pg: number;
  readonly isCpl: boolean;
}

/**
 * VCL and VDL straight from the definitions: walk the records in LSN order, asking of each whether a
 * write quorum of its PG has SCL ≥ it; VCL is the last record before the first that is not; VDL the
 * last CPL at or below VCL. `startVdl`/`startVcl`: the durable points before the first record.
 */
export function naiveDurablePoint(
  records: readonly NaiveRecord[],
  setOf: (pg: number) => QuorumSet,
  sclOf: (pg: number) => ReadonlyMap<NodeId, number>,
  startVcl: number,
  startVdl: number,
): { vcl: number; vdl: number } {
  let vcl = startVcl;
  let vdl = startVdl;
  for (const r of [...records].sort((a, b) => a.lsn - b.lsn)) {
    if (!naiveHeldByWriteQuorum(setOf(r.pg), sclOf(r.pg), r.lsn)) break;
    vcl = r.lsn;
    if (r.isCpl) vdl = r.lsn;
  }
  return { vcl, vdl };
}
