/**
 * Seeds that once found a bug: they run in every `npm test`, whatever the batch of fresh seeds is.
 * Each entry says what it found and where it was fixed; the full account is in docs/simulator.md.
 */
import type { FaultKind, NemesisMode } from "../../src/sim/nemesis.js";

export interface RegressionSeed {
  readonly seed: number;
  readonly steps: number;
  readonly mode?: NemesisMode;
  /** A targeted run: only these fault kinds (`--faults`). */
  readonly faults?: readonly FaultKind[];
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
  {
    seed: 1000, steps: 60, mode: "tolerant", faults: ["crash-control-plane"],
    bug: "the control plane's store, reopened after a kill -9 that fell between its rename and the directory " +
      "fsync, served a recovery record that was readable but not durable; a later power loss took it back, so a " +
      "segment that missed that recovery could never learn its annulment (src/control-plane/embedded-kv.ts: open " +
      "fsyncs the file and the directory before serving; deterministic guard: test/sim/control-plane-store.test.ts)",
  },
  {
    seed: 1020, steps: 60, mode: "tolerant", faults: ["orphan-records"],
    bug: "nemesis bug: an orphan-records fault injected just before the final phase fired its delayed actions " +
      "(kill the writer, kill the two nodes holding the orphans) after the final heal, so two segments of every PG " +
      "stayed down and the end check failed (src/sim/nemesis.ts: the final heal cancels every pending fault action)",
  },
];
