/**
 * The writer's `GET /metrics` (served by the Hrana endpoint, wired in `writer.ts`): cumulative
 * counters for benchmarks (bench/systems/borealis.ts reads them) and operators. Everything is a plain
 * counter kept on the existing paths — the volume writer's redo counts, the storage connections' byte
 * counts, the engine's acknowledged commits — read here; nothing on the commit path waits for a
 * request to this route. The one exception is `recordsSinceMaterialization`, which asks the storage
 * nodes (one `getSegmentState` per segment, bounded by a timeout) when the route is called.
 *
 * Fields (all cumulative since this writer process started, unless said otherwise):
 * - `redoBytes`, `redoRecords`: encoded redo records handed to the shippers, each counted once (a
 *   record goes to six segments; the six copies are in `storageNetBytes`). `mtrs`: SQLite commits
 *   (mini-transactions) made of them — a group commit of several statements is one.
 * - `commits`: commits acknowledged to clients (each statement of a group commit counts).
 * - `storageNetBytes` = `storageBytesSent` + `storageBytesReceived`: bytes on the writer's connections
 *   to storage nodes — shipping, acknowledgements, page reads, recovery, catch-up, this route's own
 *   state requests — counted as the frames written and read (TCP/IP headers not included).
 * - `recordsSinceMaterialization` (a gauge, not a counter): see `recordsSinceMaterialization` below;
 *   null when some PG's segments did not answer in time.
 * - `pgs`, `vdl`, `pageReads`: the volume's protection groups, the durable point, page misses read
 *   from storage.
 * - `processes`: this writer's own process (`role: "writer"`). The storage nodes and the control plane
 *   are not listed: the writer does not know their PIDs (neither the control plane's node records nor
 *   the storage protocol carry one). Under `borealis up` they are the `up` process (which hosts the
 *   control plane) and its children, which is how the bench samples them.
 */
import type { Lsn } from "../core/types.js";
import type { NodePool } from "./volume/node-pool.js";
import type { PgSegmentStates, VolumeWriter } from "./volume/volume-writer.js";

export interface WriterMetrics {
  readonly [key: string]: unknown;
  readonly redoBytes: number;
  readonly redoRecords: number;
  readonly mtrs: number;
  readonly commits: number;
  readonly storageNetBytes: number;
  readonly storageBytesSent: number;
  readonly storageBytesReceived: number;
  readonly recordsSinceMaterialization: number | null;
  readonly pgs: number;
  readonly vdl: number;
  readonly pageReads: number;
  readonly processes: ReadonlyArray<{ readonly role: string; readonly pid: number }>;
}

export interface WriterMetricsSources {
  readonly volumeWriter: VolumeWriter;
  readonly pool: NodePool;
  /** Commits acknowledged to clients so far (`Engine.commitsAcknowledged`). */
  readonly commits: () => number;
  /** The LSNs this writer's recovery skipped: (recovered VDL, first new LSN). No record has one. */
  readonly truncation: { readonly vdl: Lsn; readonly firstNewLsn: Lsn };
  readonly pid: number;
  /** Time allowed to each segment's state request. Default 500 ms. */
  readonly storageTimeoutMs?: number;
}

export async function collectWriterMetrics(src: WriterMetricsSources): Promise<WriterMetrics> {
  // The counters first, all in the same turn, so they agree with each other.
  const stats = src.volumeWriter.stats();
  const traffic = src.pool.trafficBytes();
  const commits = src.commits();
  const vdl = src.volumeWriter.vdl();
  const states = await src.volumeWriter.segmentStates(src.storageTimeoutMs ?? 500);
  return {
    redoBytes: stats.redoBytes,
    redoRecords: stats.records,
    mtrs: stats.mtrs,
    commits,
    storageNetBytes: traffic.sent + traffic.received,
    storageBytesSent: traffic.sent,
    storageBytesReceived: traffic.received,
    recordsSinceMaterialization: recordsSinceMaterialization(states, src.truncation),
    pgs: states.length,
    vdl,
    pageReads: stats.pageReads,
    processes: [{ role: "writer", pid: src.pid }],
  };
}

/**
 * Redo records written since the last materialization, summed over the PGs: for each PG, the records
 * above the lowest materialized point among its segments that answered (`materializedLsn` in their
 * state: every record at or below it is in the node's page store, so a restarting node replays only
 * what is above it from its hot log), up to the last record this writer handed the PG. Storage nodes
 * materialize continuously in the background, so this stays small whatever the log's length; a
 * restarted writer replays none of it (it recovers from the storage nodes' state, ARCHITECTURE D11).
 *
 * Counted by LSN distance: LSNs are allocated one per record, consecutively within an epoch
 * (invariant 1), and this writer's recovery skipped (`truncation.vdl`, `truncation.firstNewLsn`),
 * which holds no record. So the figure is exact for a volume of one PG (the default geometry: 1 GiB
 * per PG) whose materialized points are past older recoveries' truncation ranges (storage sorts up
 * to the VDL within a fraction of a second); with several PGs an LSN range also holds other PGs'
 * records, and the sum is an upper bound. Null when some PG had no segment answer.
 */
export function recordsSinceMaterialization(
  pgs: readonly PgSegmentStates[],
  truncation: { readonly vdl: Lsn; readonly firstNewLsn: Lsn },
): number | null {
  let total = 0;
  for (const pg of pgs) {
    let lowest = Infinity;
    for (const s of pg.states) if (s !== null && s.materializedLsn < lowest) lowest = s.materializedLsn;
    if (lowest === Infinity) return null;
    const top = pg.lastLsn;
    if (top <= lowest) continue;
    // The truncation range (vdl, firstNewLsn) inside (lowest, top] holds no record.
    const gap = Math.max(0, Math.min(top, truncation.firstNewLsn - 1) - Math.max(lowest, truncation.vdl));
    total += top - lowest - gap;
  }
  return total;
}
