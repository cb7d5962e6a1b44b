/**
 * Seeds that once found a bug: they run in every `npm test`, whatever the batch of fresh seeds is.
 * Each entry says what it found and where it was fixed; the full account is in docs/simulator.md.
 */
import type { NemesisMode } from "../../src/sim/nemesis.js";

export interface RegressionSeed {
  readonly seed: number;
  readonly steps: number;
  readonly mode?: NemesisMode;
  readonly bug: string;
}

export const REGRESSION_SEEDS: readonly RegressionSeed[] = [
  {
    seed: 8, steps: 60,
    bug: "a segment that missed a recovery's setEpoch came back at the old epoch: the shipper's probe " +
      "(getSegmentState answers any newer epoch) found it fine, every write was refused EPOCH_NOT_ADOPTED, " +
      "and probe → refused write → probe spun with no backoff, resending the outbox; the segment never " +
      "caught up (src/compute/volume/pg-shipper.ts: the probe adopts when the segment's epochs are behind " +
      "or a write was refused EPOCH_NOT_ADOPTED; the backoff only resets after an acknowledged write)",
  },
];
