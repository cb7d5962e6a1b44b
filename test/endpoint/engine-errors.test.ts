/**
 * What the endpoint does with what an engine says, independent of any real engine: Borealis errors keep
 * their registry code on the wire, unexpected exceptions become INTERNAL without hurting the server,
 * a refused session is a 503, `BEGIN TRANSACTION READONLY` reaches the engine verbatim, and an
 * oversized result is replaced by RESPONSE_TOO_LARGE.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createClient, LibsqlError } from "@libsql/client";
import type { SqlEngine, SqlSession, SqlStatement, StatementResult } from "../../src/compute/sql-engine.js";
import { BorealisError } from "../../src/core/errors.js";
import { realEnv, silentLogger } from "../../src/env/real.js";
import { startHranaServer, type HranaServer } from "../../src/endpoint/hrana-http.js";

/** An engine scripted by SQL text: records what it receives, fails on cue. */
function scriptedEngine() {
  const seen: string[] = [];
  let refuseSessions = false;
  let inTx = false;
  const engine: SqlEngine & { seen: string[]; refuse(on: boolean): void } = {
    seen,
    refuse: (on) => { refuseSessions = on; },
    openSession(): SqlSession {
      if (refuseSessions) throw new BorealisError("BACKPRESSURE", "engine is not taking new sessions");
      return {
        async execute(st: SqlStatement): Promise<StatementResult> {
          seen.push(st.sql);
          if (st.sql === "COMMIT_UNKNOWN") throw new BorealisError("COMMIT_OUTCOME_UNKNOWN");
          if (st.sql === "BUG") throw new TypeError("cannot read properties of undefined");
          if (/^BEGIN/.test(st.sql)) inTx = true;
          if (/^(COMMIT|ROLLBACK)/.test(st.sql)) inTx = false;
          if (st.sql === "BIG") {
            return { columns: [{ name: "x", decltype: null }], rows: [[{ type: "text", value: "x".repeat(5000) }]], affectedRowCount: 0, lastInsertRowid: null };
          }
          return { columns: [{ name: "v", decltype: null }], rows: [[{ type: "integer", value: 1n }]], affectedRowCount: 0, lastInsertRowid: null };
        },
        async executeScript() {},
        async describe() { return { params: [], columns: [], isExplain: false, isReadonly: true }; },
        isAutocommit: () => !inTx,
        async close() { inTx = false; },
      };
    },
    async close() {},
  };
  return engine;
}

describe("engine errors on the Hrana wire", () => {
  const engine = scriptedEngine();
  let server: HranaServer;

  before(async () => {
    server = await startHranaServer(realEnv({ log: silentLogger }), engine, { listen: { host: "127.0.0.1", port: 0 }, maxResponseBytes: 4000 });
  });
  after(() => server.close());

  async function code(p: Promise<unknown>): Promise<string | undefined> {
    try {
      await p;
    } catch (e) {
      assert.ok(e instanceof LibsqlError, String(e));
      return e.code;
    }
    assert.fail("expected a failure");
  }

  it("a BorealisError keeps its code; an unexpected exception is INTERNAL and the server carries on", async () => {
    const client = createClient({ url: server.url });
    try {
      assert.equal(await code(client.execute("COMMIT_UNKNOWN")), "COMMIT_OUTCOME_UNKNOWN");
      assert.equal(await code(client.execute("BUG")), "INTERNAL");
      assert.equal((await client.execute("SELECT 1")).rows[0]![0], 1);
    } finally {
      client.close();
    }
  });

  it("a session the engine refuses is a 503 with the engine's code", async () => {
    engine.refuse(true);
    try {
      const res = await fetch(server.url + "/v2/pipeline", { method: "POST", body: JSON.stringify({ baton: null, requests: [] }) });
      assert.equal(res.status, 503);
      assert.equal(((await res.json()) as { code: string }).code, "BACKPRESSURE");
    } finally {
      engine.refuse(false);
    }
  });

  it("passes BEGIN TRANSACTION READONLY to the engine as is", async () => {
    const client = createClient({ url: server.url });
    try {
      await client.batch(["SELECT 1"], "read");
      assert.ok(engine.seen.includes("BEGIN TRANSACTION READONLY"), engine.seen.join(" | "));
    } finally {
      client.close();
    }
  });

  it("replaces a result over maxResponseBytes with RESPONSE_TOO_LARGE; smaller ones still fit", async () => {
    const res = await fetch(server.url + "/v2/pipeline", {
      method: "POST",
      body: JSON.stringify({ baton: null, requests: [{ type: "execute", stmt: { sql: "BIG" } }, { type: "execute", stmt: { sql: "SELECT 1" } }, { type: "close" }] }),
    });
    const body = (await res.json()) as { results: { type: string; error?: { code: string } }[] };
    assert.equal(body.results[0]!.error?.code, "RESPONSE_TOO_LARGE");
    assert.equal(body.results[1]!.type, "ok");
    assert.equal(body.results[2]!.type, "ok");
  });
});
