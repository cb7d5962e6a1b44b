/**
 * The consistency checkers on hand-made histories: every anomaly they claim to find is found in a
 * minimal history that has it, and valid histories (hand-made, and random executions of a serial
 * model with real concurrency, indeterminate and failed operations) pass.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { checkListAppend, type MicroOp } from "../../src/faults/checkers/list-append.js";
import { checkBank } from "../../src/faults/checkers/bank.js";
import { checkLinearizable } from "../../src/faults/checkers/linearizable.js";
import { parseElleJson, toElleJson, type Op } from "../../src/faults/history.js";
import { rng } from "../../src/faults/workload.js";
import { HandHistory, invokeValue } from "./helpers.js";

const types = (ops: readonly Op[], options?: Parameters<typeof checkListAppend>[1]): string[] => checkListAppend(ops, options).anomalyTypes;

describe("list-append checker", () => {
  test("valid: sequential appends and reads, an empty read, several keys", () => {
    const h = new HandHistory();
    h.txn(0, [["r", 1, []]]);
    h.txn(0, [["append", 1, 1], ["append", 2, 1]]);
    h.txn(1, [["r", 1, [1]], ["append", 1, 2], ["r", 1, [1, 2]]]);
    h.txn(0, [["r", 1, [1, 2]], ["r", 2, [1]]]);
    const r = checkListAppend(h.ops);
    assert.deepEqual(r.anomalyTypes, []);
    assert.equal(r.valid, true);
    assert.equal(r.stats.ok, 4);
  });

  test("valid: concurrent transactions in either order, an info transaction observed or not", () => {
    const h = new HandHistory();
    const a = h.invoke(0, "txn", [["append", 1, 1]]);
    const b = h.invoke(1, "txn", [["append", 1, 2]]);
    const c = h.invoke(2, "txn", [["append", 1, 3]]);
    h.complete(b, "ok");
    h.complete(a, "ok");
    h.complete(c, "info"); // unknown: it may or may not have happened
    h.txn(3, [["append", 2, 1]], "info"); // never observed: fine
    h.txn(4, [["r", 1, [2, 1, 3]]]);
    assert.deepEqual(types(h.ops), []);
  });

  test("G0: write cycle (two keys appended in opposite orders)", () => {
    const h = new HandHistory();
    const t1 = h.invoke(0, "txn", [["append", 1, 1], ["append", 2, 1]]);
    const t2 = h.invoke(1, "txn", [["append", 1, 2], ["append", 2, 2]]);
    h.complete(t1, "ok");
    h.complete(t2, "ok");
    h.txn(2, [["r", 1, [1, 2]], ["r", 2, [2, 1]]]);
    assert.ok(types(h.ops).includes("G0"), types(h.ops).join());
  });

  test("G1a: aborted read", () => {
    const h = new HandHistory();
    h.txn(0, [["append", 1, 1]], "fail");
    h.txn(1, [["r", 1, [1]]]);
    assert.deepEqual(types(h.ops), ["G1a"]);
  });

  test("G1b: intermediate read", () => {
    const h = new HandHistory();
    const t1 = h.invoke(0, "txn", [["append", 1, 1], ["append", 1, 2]]);
    h.txn(1, [["r", 1, [1]]]);
    h.complete(t1, "ok");
    assert.ok(types(h.ops).includes("G1b"), types(h.ops).join());
  });

  test("G1c: circular information flow", () => {
    const h = new HandHistory();
    const t1 = h.invoke(0, "txn", [["append", 1, 1], ["r", 2, null]]);
    const t2 = h.invoke(1, "txn", [["append", 2, 1], ["r", 1, null]]);
    h.complete(t1, "ok", [["append", 1, 1], ["r", 2, [1]]]);
    h.complete(t2, "ok", [["append", 2, 1], ["r", 1, [1]]]);
    assert.deepEqual(types(h.ops), ["G1c"]);
  });

  test("G-single: read skew (elle-cli's g-single-item history)", () => {
    const h = new HandHistory();
    h.txn(0, [["append", 1, 1], ["append", 2, 1]]);
    h.txn(1, [["append", 1, 2], ["r", 2, []]]);
    h.txn(2, [["r", 1, [1, 2]]]);
    assert.deepEqual(types(h.ops, { realtimeEdges: false, processEdges: false }), ["G-single"]);
  });

  test("G2-item: write skew", () => {
    const h = new HandHistory();
    const t1 = h.invoke(0, "txn", [["r", 1, null], ["r", 2, null], ["append", 1, 1]]);
    const t2 = h.invoke(1, "txn", [["r", 1, null], ["r", 2, null], ["append", 2, 1]]);
    h.complete(t1, "ok", [["r", 1, []], ["r", 2, []], ["append", 1, 1]]);
    h.complete(t2, "ok", [["r", 1, []], ["r", 2, []], ["append", 2, 1]]);
    h.txn(2, [["r", 1, [1]], ["r", 2, [1]]]);
    assert.deepEqual(types(h.ops), ["G2-item"]);
  });

  test("lost update: two committed read-modify-appends of the same version", () => {
    const h = new HandHistory();
    const t1 = h.invoke(0, "txn", [["r", 1, null], ["append", 1, 1]]);
    const t2 = h.invoke(1, "txn", [["r", 1, null], ["append", 1, 2]]);
    h.complete(t1, "ok", [["r", 1, []], ["append", 1, 1]]);
    h.complete(t2, "ok", [["r", 1, []], ["append", 1, 2]]);
    h.txn(2, [["r", 1, [1, 2]]]);
    const t = types(h.ops);
    assert.ok(t.includes("lost-update"), t.join());
    assert.ok(t.includes("G-single"), t.join()); // the same anomaly, seen as a cycle
  });

  test("internal inconsistency: a read that misses the transaction's own append", () => {
    const h = new HandHistory();
    h.txn(0, [["append", 1, 5], ["r", 1, []]]);
    assert.ok(types(h.ops).includes("internal"));
    const h2 = new HandHistory();
    h2.txn(0, [["append", 1, 1]]);
    h2.txn(0, [["r", 1, [1]], ["append", 1, 2], ["r", 1, [1]]]);
    assert.ok(types(h2.ops).includes("internal"));
  });

  test("duplicate elements, garbage reads, incompatible orders, duplicate appends", () => {
    const h = new HandHistory();
    h.txn(0, [["append", 1, 1]]);
    h.txn(0, [["r", 1, [1, 1]]]);
    assert.ok(types(h.ops).includes("duplicate-elements"));
    const g = new HandHistory();
    g.txn(0, [["r", 1, [7]]]);
    assert.deepEqual(types(g.ops), ["garbage-read"]);
    const o = new HandHistory();
    o.txn(0, [["append", 1, 1]]);
    o.txn(1, [["append", 1, 2]]);
    o.txn(2, [["r", 1, [1, 2]]]);
    o.txn(3, [["r", 1, [2, 1]]]);
    assert.ok(types(o.ops).includes("incompatible-order"));
    const d = new HandHistory();
    d.txn(0, [["append", 1, 1]]);
    d.txn(1, [["append", 1, 1]]);
    assert.ok(types(d.ops).includes("duplicate-appends"));
  });

  test("real-time: a stale read after a completed append is G-single-realtime and a lost write, only with real-time edges", () => {
    const h = new HandHistory();
    h.txn(0, [["append", 1, 1]]);
    h.txn(1, [["r", 1, []]]);
    h.txn(2, [["r", 1, [1]]]);
    assert.deepEqual(types(h.ops), ["G-single-realtime", "lost-write"]);
    assert.deepEqual(types(h.ops, { realtimeEdges: false, processEdges: false }), []);
  });

  test("process order: a process that does not see its own earlier append is G-single-process", () => {
    const h = new HandHistory();
    h.txn(0, [["append", 1, 1]]);
    h.txn(0, [["r", 1, []]]);
    h.txn(1, [["r", 1, [1]]]);
    assert.deepEqual(types(h.ops, { realtimeEdges: false }), ["G-single-process"]);
    // Concurrent transactions of different processes may be ordered either way.
    const h2 = new HandHistory();
    const a = h2.invoke(0, "txn", [["append", 1, 1]]);
    const r = h2.invoke(1, "txn", [["r", 1, null]]);
    h2.complete(a, "ok");
    h2.complete(r, "ok", [["r", 1, []]]);
    assert.deepEqual(types(h2.ops), []);
  });

  test("the elle-cli JSON round trip keeps the verdict", () => {
    const h = new HandHistory();
    h.txn(0, [["append", 1, 1], ["append", 2, 1]]);
    h.txn(1, [["append", 1, 2], ["r", 2, []]]);
    h.txn(2, [["r", 1, [1, 2]]]);
    const json = toElleJson(h.ops);
    const back = parseElleJson(json);
    assert.deepEqual(types(back, { realtimeEdges: false }), ["G-single"]);
    const first = JSON.parse(json)[0];
    assert.deepEqual(Object.keys(first).slice(0, 5), ["index", "time", "process", "type", "f"]);
    assert.deepEqual(first.value, [["append", 1, 1], ["append", 2, 1]]);
  });

  test("random executions of a serializable model pass (with real-time edges, info and fail)", () => {
    for (let seed = 1; seed <= 60; seed++) {
      const ops = simulateListAppend(seed, { processes: 5, txns: 150, keys: 6 });
      const r = checkListAppend(ops);
      assert.deepEqual(r.anomalyTypes, [], `seed ${seed}: ${JSON.stringify(r.anomalies)}`);
    }
  });

  test("random executions with one injected fault are caught", () => {
    let caught = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const ops = simulateListAppend(seed, { processes: 5, txns: 120, keys: 4, loseAppendAt: 30 });
      if (!checkListAppend(ops).valid) caught++;
    }
    assert.equal(caught, 40, `a lost append is caught in ${caught} of 40 histories`);
  });
});

describe("bank checker", () => {
  const accounts = [0, 1, 2];
  test("valid: totals conserved", () => {
    const h = new HandHistory();
    h.op(0, "read", null, "ok", { 0: 10, 1: 10, 2: 10 });
    h.op(1, "transfer", { from: 0, to: 1, amount: 5 }, "ok");
    h.op(0, "read", null, "ok", { 0: 5, 1: 15, 2: 10 });
    h.op(1, "transfer", { from: 2, to: 1, amount: 50 }, "fail");
    h.op(1, "read", null, "fail", null);
    assert.equal(checkBank(h.ops, { accounts, total: 30 }).valid, true);
  });
  test("wrong total, negative balance, missing account", () => {
    const h = new HandHistory();
    h.op(0, "read", null, "ok", { 0: 10, 1: 15, 2: 10 });
    h.op(0, "read", null, "ok", { 0: -5, 1: 25, 2: 10 });
    h.op(0, "read", null, "ok", { 0: 10, 1: 20 });
    const r = checkBank(h.ops, { accounts, total: 30 });
    assert.deepEqual(r.anomalyTypes, ["missing-account", "negative-balance", "wrong-total"]);
    assert.equal(r.counts["wrong-total"], 1);
  });
});

describe("linearizability checker", () => {
  const reg = (key: number, value: unknown): unknown => ({ key, value });
  test("valid: sequential write, read, cas, read", () => {
    const h = new HandHistory();
    h.op(0, "read", reg(1, null), "ok", reg(1, null));
    h.op(0, "write", reg(1, 1), "ok");
    h.op(1, "read", reg(1, null), "ok", reg(1, 1));
    h.op(1, "cas", reg(1, [1, 2]), "ok");
    h.op(1, "cas", reg(1, [1, 3]), "fail");
    h.op(0, "read", reg(1, null), "ok", reg(1, 2));
    assert.equal(checkLinearizable(h.ops).valid, true);
  });
  test("invalid: a stale read after a completed write", () => {
    const h = new HandHistory();
    h.op(0, "write", reg(1, 1), "ok");
    h.op(1, "read", reg(1, null), "ok", reg(1, null));
    const r = checkLinearizable(h.ops);
    assert.equal(r.valid, false);
    assert.equal(r.invalidKeys[0]!.key, 1);
  });
  test("invalid: two reads see concurrent writes in opposite orders", () => {
    const h = new HandHistory();
    const w1 = h.invoke(0, "write", reg(1, 1));
    const w2 = h.invoke(1, "write", reg(1, 2));
    h.complete(w1, "ok");
    h.complete(w2, "ok");
    h.op(2, "read", reg(1, null), "ok", reg(1, 2));
    h.op(2, "read", reg(1, null), "ok", reg(1, 1));
    assert.equal(checkLinearizable(h.ops).valid, false);
  });
  test("valid: concurrent write and reads of either value; indeterminate write seen later", () => {
    const h = new HandHistory();
    const w = h.invoke(0, "write", reg(1, 1));
    h.op(1, "read", reg(1, null), "ok", reg(1, null));
    h.op(2, "read", reg(1, null), "ok", reg(1, 1));
    h.complete(w, "ok");
    const w2 = h.invoke(3, "write", reg(1, 2));
    h.complete(w2, "info");
    h.op(4, "read", reg(1, null), "ok", reg(1, 1));
    h.op(4, "read", reg(1, null), "ok", reg(1, 2));
    assert.equal(checkLinearizable(h.ops).valid, true);
    h.op(4, "read", reg(1, null), "ok", reg(1, 1)); // back to 1: nothing wrote 1 after 2
    assert.equal(checkLinearizable(h.ops).valid, false);
  });
  test("a bounded search reports unknown, never valid", () => {
    const ops = simulateRegister(3, { processes: 6, ops: 300, keys: 1 });
    const r = checkLinearizable(ops, { maxStepsPerKey: 10 });
    assert.equal(r.valid, "unknown");
    assert.equal(r.unknownKeys.length, 1);
  });
  test("random executions of a linearizable register pass; a corrupted read fails", () => {
    for (let seed = 1; seed <= 40; seed++) {
      const ops = simulateRegister(seed, { processes: 5, ops: 200, keys: 3 });
      const r = checkLinearizable(ops);
      assert.equal(r.valid, true, `seed ${seed}: ${JSON.stringify(r.invalidKeys)}`);
    }
    let caught = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const ops = simulateRegister(seed, { processes: 3, ops: 120, keys: 1, corruptReadAt: 60 });
      if (checkLinearizable(ops).valid === false) caught++;
    }
    assert.ok(caught >= 15, `a read of a value never written is caught in ${caught} of 20`);
  });
});

// ------------------------------------------------------------------------------------ simulations

/**
 * A strictly serializable list-append store: each transaction takes effect atomically at a random
 * moment between its invocation and its completion. Some complete as info (applied or not), some
 * fail (never applied). `loseAppendAt`: that transaction's appends are acknowledged but never applied.
 */
function simulateListAppend(seed: number, o: { processes: number; txns: number; keys: number; loseAppendAt?: number }): Op[] {
  const rand = rng(seed);
  const h = new HandHistory();
  const state = new Map<number, number[]>();
  let nextValue = 1;
  let started = 0;
  let nextProcess = o.processes;
  let lost = false;
  const procs: { id: number; op?: Op; mops?: MicroOp[]; applied?: MicroOp[] | "skip"; n?: number; lose?: boolean }[] = [];
  for (let p = 0; p < o.processes; p++) procs.push({ id: p });
  for (let steps = 0; steps < o.txns * 10; steps++) {
    const p = procs[rand.int(procs.length)]!;
    if (p.op === undefined) {
      if (started >= o.txns) continue;
      const mops: MicroOp[] = [];
      for (let i = 0, n = 1 + rand.int(4); i < n; i++) {
        const k = rand.int(o.keys);
        mops.push(rand.int(2) === 0 ? ["append", k, nextValue++] : ["r", k, null]);
      }
      p.mops = mops;
      p.n = started++;
      p.op = h.invoke(p.id, "txn", invokeValue(mops));
      continue;
    }
    if (p.applied === undefined) {
      const roll = rand.int(20);
      if (roll === 0 && p.n! < (o.loseAppendAt ?? Infinity)) { p.applied = "skip"; continue; } // will fail
      const done: MicroOp[] = [];
      const lose = !lost && p.n! >= (o.loseAppendAt ?? Infinity) && p.mops!.some((m) => m[0] === "append");
      if (lose) { lost = true; p.lose = true; }
      for (const m of p.mops!) {
        if (m[0] === "append") {
          if (!lose) state.set(m[1], [...(state.get(m[1]) ?? []), m[2]]);
          done.push(m);
        } else done.push(["r", m[1], [...(state.get(m[1]) ?? [])]]);
      }
      p.applied = done;
      continue;
    }
    const roll = rand.int(20);
    if (p.applied === "skip") h.complete(p.op, roll < 10 ? "fail" : "info");
    else if (roll === 0 && !p.lose) h.complete(p.op, "info");
    else h.complete(p.op, "ok", p.applied);
    p.lose = false;
    const retired = h.ops[h.ops.length - 1]!.type === "info";
    p.op = undefined;
    p.applied = undefined;
    if (retired) p.id = nextProcess++;
  }
  for (const p of procs) if (p.op !== undefined) h.complete(p.op, "info");
  // A final read of every key, so the version orders are known.
  const final: MicroOp[] = [];
  for (let k = 0; k < o.keys; k++) final.push(["r", k, [...(state.get(k) ?? [])]]);
  h.txn(nextProcess, final);
  return h.ops;
}

/** A linearizable register per key: each operation takes effect at a random moment inside its interval. */
function simulateRegister(seed: number, o: { processes: number; ops: number; keys: number; corruptReadAt?: number }): Op[] {
  const rand = rng(seed);
  const h = new HandHistory();
  const state = new Map<number, number | null>();
  let nextValue = 1;
  let started = 0;
  let corrupted = o.corruptReadAt === undefined;
  let nextProcess = o.processes;
  const procs: { id: number; op?: Op; n?: number; result?: { type: "ok" | "fail"; value: unknown } | "info-skip" }[] = [];
  for (let p = 0; p < o.processes; p++) procs.push({ id: p });
  for (let steps = 0; steps < o.ops * 10; steps++) {
    const p = procs[rand.int(procs.length)]!;
    if (p.op === undefined) {
      if (started >= o.ops) continue;
      p.n = started++;
      const key = rand.int(o.keys);
      const kind = rand.int(3);
      p.op = kind === 0 ? h.invoke(p.id, "read", { key, value: null })
        : kind === 1 ? h.invoke(p.id, "write", { key, value: nextValue++ })
        : h.invoke(p.id, "cas", { key, value: [rand.int(nextValue), nextValue++] });
      continue;
    }
    const v = p.op.value as { key: number; value: unknown };
    if (p.result === undefined) {
      if (rand.int(15) === 0 && p.op.f !== "read") { p.result = "info-skip"; continue; }
      const cur = state.get(v.key) ?? null;
      if (p.op.f === "read") {
        const corrupt = p.n! >= o.corruptReadAt! && !corrupted;
        if (corrupt) corrupted = true;
        p.result = { type: "ok", value: { key: v.key, value: corrupt ? 999_999 : cur } };
      } else if (p.op.f === "write") {
        state.set(v.key, v.value as number);
        p.result = { type: "ok", value: v };
      } else {
        const [from, to] = v.value as [number, number];
        if (cur === from) { state.set(v.key, to); p.result = { type: "ok", value: v }; }
        else p.result = { type: "fail", value: v };
      }
      continue;
    }
    if (p.result === "info-skip" || rand.int(20) === 0) {
      h.complete(p.op, "info");
      p.id = nextProcess++;
    } else h.complete(p.op, p.result.type, p.result.value);
    p.op = undefined;
    p.result = undefined;
  }
  for (const p of procs) if (p.op !== undefined) h.complete(p.op, "info");
  return h.ops;
}
