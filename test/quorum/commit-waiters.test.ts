import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { AssertionError } from "../../src/core/assert.js";
import { Lsn, NodeId, PgId } from "../../src/core/types.js";
import { CommitWaiters } from "../../src/quorum/commit-waiters.js";
import { DurablePointTracker } from "../../src/quorum/durable-point.js";
import { allMembers, simpleQuorumSet } from "../../src/quorum/quorum-set.js";

test("waiters are released in LSN order, only once VDL covers them (invariant 5)", () => {
  const w = new CommitWaiters<string>();
  assert.equal(w.add(Lsn(30), "c30"), true);
  assert.equal(w.add(Lsn(10), "c10"), true);
  assert.equal(w.add(Lsn(20), "c20a"), true);
  assert.equal(w.add(Lsn(20), "c20b"), true);
  assert.deepEqual(w.onVdlAdvanced(Lsn(9)), []);
  assert.deepEqual(w.onVdlAdvanced(Lsn(20)), ["c10", "c20a", "c20b"]);
  assert.equal(w.size, 1);
  assert.equal(w.add(Lsn(15), "late"), false); // already durable: acknowledge at once
  assert.deepEqual(w.onVdlAdvanced(Lsn(29)), []);
  assert.deepEqual(w.onVdlAdvanced(Lsn(100)), ["c30"]);
  assert.throws(() => w.onVdlAdvanced(Lsn(99)), (e) => e instanceof AssertionError && /invariant 4/.test(e.message));
  w.add(Lsn(200), "x");
  w.add(Lsn(150), "y");
  assert.deepEqual(w.drain(), ["y", "x"]);
  assert.equal(w.size, 0);
});

test("waiters fed by a tracker are acknowledged in LSN order and never above VDL (property)", () => {
  fc.assert(fc.property(
    fc.array(fc.record({ cpl: fc.boolean(), member: fc.nat(5), ackUpTo: fc.nat(1000) }), { minLength: 1, maxLength: 80, size: "max" }),
    (steps) => {
      const set = simpleQuorumSet(Array.from({ length: 6 }, (_, i) => NodeId(`s${i}`)));
      const t = new DurablePointTracker({ vdl: Lsn(0), pgs: [{ pgId: PgId(0), quorumSet: set, lastLsn: Lsn(0) }] });
      const w = new CommitWaiters<number>();
      const acked: number[] = [];
      let lsn = 0;
      for (const s of steps) {
        lsn++;
        t.recordSent(PgId(0), Lsn(lsn), s.cpl);
        if (s.cpl && !w.add(Lsn(lsn), lsn)) acked.push(lsn);
        const scl = 1 + (s.ackUpTo % lsn);
        if (t.onAck(PgId(0), allMembers(set)[s.member]!, Lsn(scl))) {
          for (const c of w.onVdlAdvanced(t.vdl)) {
            assert.ok(c <= t.vdl, `commit ${c} acknowledged above VDL ${t.vdl}`);
            acked.push(c);
          }
        }
      }
      assert.deepEqual(acked, [...acked].sort((a, b) => a - b));
      // Exactly the CPLs at or below VDL were acknowledged.
      assert.equal(acked.length, steps.filter((s, i) => s.cpl && i + 1 <= t.vdl).length);
      assert.equal(acked.length + w.size, steps.filter((s) => s.cpl).length);
    }), { numRuns: 2_000 });
});
