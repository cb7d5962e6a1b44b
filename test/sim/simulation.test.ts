/**
 * The deterministic simulator in CI (STYLE.md rule 10): the regression seeds, a bounded batch of
 * fresh seeds, the beyond-tolerance mode, and replay. A failure prints its seed and the command that
 * replays it. `SIM_SEEDS=n` changes the batch size, `SIM_BASE=b` its first seed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { runSimulation, type SimResult } from "../../src/sim/run.js";
import { REGRESSION_SEEDS } from "./regressions.js";

const BATCH = Number(process.env["SIM_SEEDS"] ?? 12);
const BASE = Number(process.env["SIM_BASE"] ?? 10_000);
const STEPS = 30;

function report(r: SimResult, steps: number, mode?: string, faults?: readonly string[]): string {
  const replay = `npm run sim -- --seed ${r.seed} --steps ${steps}${mode !== undefined ? ` --mode ${mode}` : ""}${faults !== undefined ? ` --faults ${faults.join(",")}` : ""}`;
  const lines = [`seed ${r.seed} failed (trace hash ${r.traceHash}); replay: ${replay}`];
  for (const f of r.failures.slice(0, 3)) lines.push(`  ${f.kind} at ${f.atMs.toFixed(3)} ms: ${f.message.split("\n")[0]}`);
  return lines.join("\n");
}

test("replay: the same seed runs to the same trace hash; another seed does not", async () => {
  const a = await runSimulation({ seed: 4242, steps: 10 });
  const b = await runSimulation({ seed: 4242, steps: 10 });
  const c = await runSimulation({ seed: 4243, steps: 10 });
  assert.ok(a.ok, report(a, 10));
  assert.equal(a.traceHash, b.traceHash, "same seed, same trace");
  assert.equal(a.events, b.events);
  assert.equal(a.virtualMs, b.virtualMs);
  assert.notEqual(a.traceHash, c.traceHash, "different seeds, different traces");
});

for (const r of REGRESSION_SEEDS) {
  test(`regression seed ${r.seed}: ${r.bug.slice(0, 90)}…`, async () => {
    const result = await runSimulation({
      seed: r.seed, steps: r.steps, ...(r.mode !== undefined ? { mode: r.mode } : {}), ...(r.faults !== undefined ? { faults: r.faults } : {}),
    });
    assert.ok(result.ok, report(result, r.steps, r.mode, r.faults));
  });
}

test(`a batch of ${BATCH} seeds from ${BASE} keeps every invariant`, async () => {
  const failed: string[] = [];
  for (let seed = BASE; seed < BASE + BATCH; seed++) {
    const r = await runSimulation({ seed, steps: STEPS });
    if (!r.ok) {
      const text = report(r, STEPS);
      process.stdout.write(text + "\n");
      failed.push(text);
    }
  }
  assert.deepEqual(failed, [], `failing seeds:\n${failed.join("\n")}`);
});

test("beyond tolerance: 3 of 6 segments down makes the volume unavailable, never wrong", async () => {
  for (const seed of [20_001, 20_002]) {
    const r = await runSimulation({ seed, steps: STEPS, mode: "beyond" });
    assert.ok(r.ok, report(r, STEPS, "beyond"));
    assert.equal(r.stats.faults["outage"], 1, `seed ${seed}: the outage happened`);
  }
});
