/**
 * Brings one segment up to a target LSN by copying the records it lacks from a peer that holds them.
 *
 * Used by recovery (a write quorum of every PG must be complete through the recovered VDL before the
 * writer serves anything, invariant 8) and by the shipper when a segment fell further behind than the
 * records the writer still buffers. This is the writer-driven stand-in for the storage nodes' own
 * gossip repair (roadmap 3): the same records, moved by the same messages, only started from the
 * writer's side.
 */
import { BorealisError } from "../../core/errors.js";
import type { Epochs, Lsn, SegmentKey } from "../../core/types.js";
import type { StorageClient } from "../../wire/storage-client.js";

export interface CatchUpOptions {
  readonly maxBytesPerRound?: number;
  /** Rounds of (readRecords, writeBatch) before giving up; each moves up to maxBytesPerRound. */
  readonly maxRounds?: number;
  /** The writer's current VDL, passed on with every batch. */
  readonly writerVdl: () => Lsn;
}

/**
 * Copies records in (fromScl, target] from `donor` to `target` until the target's SCL reaches
 * `targetLsn`. Resolves with the target's final SCL; rejects if the donor cannot supply the range or
 * either node fails.
 */
export async function catchUpSegment(
  key: SegmentKey,
  epochs: Epochs,
  donor: StorageClient,
  target: StorageClient,
  fromScl: Lsn,
  targetLsn: Lsn,
  options: CatchUpOptions,
): Promise<Lsn> {
  const maxBytes = options.maxBytesPerRound ?? 1 << 20;
  const maxRounds = options.maxRounds ?? 100_000;
  let scl = fromScl;
  for (let round = 0; scl < targetLsn; round++) {
    if (round >= maxRounds) {
      throw new BorealisError("TIMEOUT", `catch-up of ${key.volumeId}/${key.pgId} stopped after ${maxRounds} rounds at SCL ${scl}`);
    }
    const chunk = await donor.request({ type: "readRecords", key, epochs, afterLsn: scl, upToLsn: targetLsn, maxBytes });
    if (chunk.records.length === 0) {
      throw new BorealisError("NO_QUORUM", `donor holds no records of ${key.volumeId}/${key.pgId} in (${scl}, ${targetLsn}]`, { scl });
    }
    const ack = await target.request({ type: "writeBatch", key, epochs, writerVdl: options.writerVdl(), records: chunk.records });
    if (ack.scl <= scl) {
      // The donor's records did not extend the target's chain: the donor lacks the next record too.
      throw new BorealisError("NO_QUORUM", `catch-up of ${key.volumeId}/${key.pgId} made no progress at SCL ${scl}`, { scl });
    }
    scl = ack.scl;
  }
  return scl;
}
