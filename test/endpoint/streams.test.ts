/**
 * Stream table (batons, serial use, idle expiry, bounds) in the simulator's virtual time: expiry is a
 * timer on `Env.clock`, so these tests wait 10 s without waiting.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { SqlEngine, SqlSession } from "../../src/compute/sql-engine.js";
import { silentLogger } from "../../src/env/real.js";
import { HranaError } from "../../src/endpoint/errors.js";
import { StreamTable, type StreamTableOptions } from "../../src/endpoint/streams.js";
import { SimWorld } from "../../src/sim/world.js";

interface FakeSession extends SqlSession {
  closed: boolean;
}

function fakeEngine(): SqlEngine & { sessions: FakeSession[] } {
  const sessions: FakeSession[] = [];
  return {
    sessions,
    openSession() {
      const s: FakeSession = {
        closed: false,
        execute: async () => ({ columns: [], rows: [], affectedRowCount: 0, lastInsertRowid: null }),
        executeScript: async () => {},
        describe: async () => ({ params: [], columns: [], isExplain: false, isReadonly: true }),
        isAutocommit: () => true,
        close: async () => {
          s.closed = true;
        },
      };
      sessions.push(s);
      return s;
    },
    close: async () => {},
  };
}

const options: StreamTableOptions = {
  idleTimeoutMs: 10_000, maxStreams: 3, expiredRetentionMs: 300_000, maxExpiredRemembered: 4,
  maxStoredSql: 50, maxStoredSqlBytes: 1 << 20,
};

function setup(seed = 1) {
  const world = new SimWorld(seed);
  const env = world.process("endpoint").start();
  const engine = fakeEngine();
  const table = new StreamTable(env, engine, options, silentLogger);
  return { world, engine, table };
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof HranaError, String(e));
    return e.code;
  }
  return "none";
}

test("a baton is single-use and names its stream; requests on a stream are serial", () => {
  const { table } = setup();
  const s = table.acquire(null);
  assert.equal(code(() => table.acquire(null)), "none", "another new stream is fine");
  const b1 = table.release(s)!;
  assert.equal(typeof b1, "string");
  const again = table.acquire(b1);
  assert.equal(again, s);
  assert.equal(code(() => table.acquire(b1)), "BATON_REUSED", "busy stream");
  const b2 = table.release(again)!;
  assert.notEqual(b2, b1);
  assert.equal(code(() => table.acquire(b1)), "BATON_REUSED", "stale baton");
  assert.equal(code(() => table.acquire(b2.slice(0, -1) + (b2.endsWith("A") ? "B" : "A"))), "BATON_INVALID");
  assert.equal(code(() => table.acquire("x".repeat(10_000))), "BATON_INVALID");
  assert.equal(table.acquire(b2), s);
});

test("an idle stream expires after the timeout, rolling back (closing) its session", async () => {
  const { world, engine, table } = setup();
  const s = table.acquire(null);
  let baton = table.release(s)!;
  // Each request resets the idle timer.
  for (let i = 0; i < 5; i++) {
    await world.scheduler.run({ untilMs: world.scheduler.now() + 9_999 });
    baton = table.release(table.acquire(baton))!;
  }
  assert.equal(engine.sessions[0]!.closed, false);
  await world.scheduler.run({ untilMs: world.scheduler.now() + 10_001 });
  assert.equal(engine.sessions[0]!.closed, true);
  assert.equal(table.size, 0);
  assert.equal(code(() => table.acquire(baton)), "STREAM_EXPIRED");
});

test("a busy stream does not expire, however long its request runs", async () => {
  const { world, engine, table } = setup();
  const s = table.acquire(null);
  await world.scheduler.run({ untilMs: 60_000 });
  assert.equal(engine.sessions[0]!.closed, false);
  const baton = table.release(s)!;
  assert.equal(table.acquire(baton), s);
});

test("open streams are bounded, and closing one makes room", async () => {
  const { table } = setup();
  const held = [table.acquire(null), table.acquire(null), table.acquire(null)];
  assert.equal(code(() => table.acquire(null)), "TOO_MANY_STREAMS");
  await table.close(held[0]!);
  assert.equal(table.release(held[0]!), null, "a closed stream has no baton");
  assert.equal(code(() => table.acquire(null)), "none");
});

test("the memory of expired streams is bounded; forgotten ones still read as expired", async () => {
  const { world, table } = setup();
  const batons: string[] = [];
  for (let i = 0; i < 6; i++) {
    batons.push(table.release(table.acquire(null))!);
    await world.scheduler.run({ untilMs: world.scheduler.now() + 10_001 });
  }
  assert.equal(table.size, 0);
  for (const b of batons) assert.equal(code(() => table.acquire(b)), "STREAM_EXPIRED");
});

test("shutdown closes idle streams at once and busy ones when their request ends", async () => {
  const { engine, table } = setup();
  const idle = table.acquire(null);
  table.release(idle);
  const busy = table.acquire(null);
  await table.shutdown();
  assert.equal(engine.sessions[0]!.closed, true);
  assert.equal(engine.sessions[1]!.closed, false);
  assert.equal(table.release(busy), null);
  await table.settled();
  assert.equal(engine.sessions[1]!.closed, true);
  assert.equal(code(() => table.acquire(null)), "SHUTTING_DOWN");
});

test("batons are the same for the same seed (simulation replays)", () => {
  const a = setup(42);
  const b = setup(42);
  const c = setup(43);
  const ba = a.table.release(a.table.acquire(null));
  assert.equal(ba, b.table.release(b.table.acquire(null)));
  assert.notEqual(ba, c.table.release(c.table.acquire(null)));
});
