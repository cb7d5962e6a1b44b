/**
 * Hrana batches: steps run in order, each only if its condition holds (HRANA_3_SPEC.md, "Batches").
 *
 * This is how @libsql/client makes a transaction out of one HTTP request: `BEGIN`, then each statement
 * conditioned on `ok(previous)` (and, on v3, `not(is_autocommit)`, in case a statement's failure made
 * SQLite roll the transaction back by itself), then `COMMIT` on `ok(last)`, then `ROLLBACK` on
 * `not(ok(commit))`. A skipped step has neither a result nor an error, so `ok` and `error` are both
 * false for it. `is_autocommit` asks the session at the moment the condition is evaluated.
 *
 * Conditions only name earlier steps (checked when the body is parsed, `protocol.ts`), and their
 * nesting is bounded there too, so evaluation always terminates quickly.
 */
import type { SqlSession, StatementResult } from "../compute/sql-engine.js";
import { assert } from "../core/assert.js";
import type { ProtoError } from "./errors.js";
import type { BatchCond, BatchStep, StmtRequest } from "./protocol.js";

export type StepOutcome =
  | { readonly kind: "ok"; readonly result: StatementResult; readonly wantRows: boolean }
  | { readonly kind: "error"; readonly error: ProtoError }
  | { readonly kind: "skipped" };

export function evalCond(cond: BatchCond, outcomes: readonly StepOutcome[], isAutocommit: () => boolean): boolean {
  switch (cond.type) {
    case "ok":
    case "error": {
      const outcome = outcomes[cond.step];
      assert(outcome !== undefined, "batch conditions name only earlier steps (checked at parse)");
      return outcome.kind === cond.type;
    }
    case "not":
      return !evalCond(cond.cond, outcomes, isAutocommit);
    case "and":
      return cond.conds.every((c) => evalCond(c, outcomes, isAutocommit));
    case "or":
      return cond.conds.some((c) => evalCond(c, outcomes, isAutocommit));
    case "is_autocommit":
      return isAutocommit();
  }
}

/**
 * Runs a batch on a session. `runStmt` executes one statement (resolving stored SQL, converting
 * errors); it never throws, it returns the step's outcome. Steps run strictly one after another.
 */
export async function runBatch(
  session: SqlSession,
  steps: readonly BatchStep[],
  runStmt: (stmt: StmtRequest) => Promise<StepOutcome>,
): Promise<StepOutcome[]> {
  const outcomes: StepOutcome[] = [];
  for (const step of steps) {
    const go = step.condition === undefined || evalCond(step.condition, outcomes, () => session.isAutocommit());
    outcomes.push(go ? await runStmt(step.stmt) : { kind: "skipped" });
  }
  assert(outcomes.length === steps.length, "one outcome per step");
  return outcomes;
}
