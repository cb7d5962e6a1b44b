/**
 * The bench's lean Hrana client (bench/systems/hrana-client.ts) against the real endpoint code
 * (`startHranaServer`) over the test-only better-sqlite3 engine: values round-trip, transactions
 * commit and roll back on one stream, SQLite errors keep their code (SQLITE_BUSY is retryable, a
 * constraint is not), and no stream is left open behind it.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { realEnv, silentLogger } from "../../src/env/real.js";
import { startHranaServer, type HranaServer } from "../../src/endpoint/hrana-http.js";
import type { SqlEngine } from "../../src/compute/sql-engine.js";
import { betterSqliteEngine } from "../endpoint/better-sqlite3-engine.js";
import { encodeArg, HranaClient, HranaClientError } from "../../bench/systems/hrana-client.js";

describe("bench: lean Hrana client", () => {
  let engine: SqlEngine;
  let server: HranaServer;
  const clients: HranaClient[] = [];
  const client = (): HranaClient => {
    const c = new HranaClient(server.url);
    clients.push(c);
    return c;
  };
  const openStreams = async (): Promise<number> => ((await (await fetch(`${server.url}/health`)).json()) as { streams: number }).streams;

  before(async () => {
    engine = betterSqliteEngine();
    server = await startHranaServer(realEnv({ log: silentLogger }), engine, { listen: { host: "127.0.0.1", port: 0 }, version: "test" });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await server.close();
    await engine.close();
  });

  it("encodes values as Hrana wants them", () => {
    assert.deepEqual(encodeArg(5), { type: "integer", value: "5" });
    assert.deepEqual(encodeArg(-(2 ** 53) + 1), { type: "integer", value: String(-(2 ** 53) + 1) });
    assert.deepEqual(encodeArg(1.5), { type: "float", value: 1.5 });
    assert.deepEqual(encodeArg(2n ** 63n - 1n), { type: "integer", value: "9223372036854775807" });
    assert.deepEqual(encodeArg("x"), { type: "text", value: "x" });
    assert.deepEqual(encodeArg(null), { type: "null" });
    assert.deepEqual(encodeArg(new Uint8Array([1, 2, 255])), { type: "blob", base64: "AQL/" });
  });

  it("executes autocommit statements and round-trips every value type", async () => {
    const c = client();
    await c.execute("CREATE TABLE vals (id INTEGER PRIMARY KEY, i INTEGER, f REAL, t TEXT, b BLOB, n TEXT)");
    await c.execute("INSERT INTO vals VALUES (?, ?, ?, ?, ?, ?)", [1, 2n ** 62n, 0.25, "héllo", new Uint8Array([0, 7, 255]), null]);
    const rows = await c.execute("SELECT id, i, f, t, b, n, typeof(?) FROM vals WHERE id = ?", [3, 1]);
    assert.equal(rows.length, 1);
    const [id, i, f, t, b, n, type] = rows[0]!;
    assert.equal(id, 1);
    assert.equal(i, 2n ** 62n, "an integer beyond 2^53 comes back exact, as a bigint");
    assert.equal(f, 0.25);
    assert.equal(t, "héllo");
    assert.deepEqual([...(b as Buffer)], [0, 7, 255]);
    assert.equal(n, null);
    assert.equal(type, "integer", "a JS integer is bound as an INTEGER");
    assert.equal(await openStreams(), 0, "execute closes its stream");
  });

  it("commits a transaction, and rolls it back when the function throws", async () => {
    const c = client();
    await c.execute("CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER NOT NULL)");
    const seen = await c.transaction(async (tx) => {
      await tx.execute("INSERT INTO acct VALUES (?, ?)", [1, 100]);
      await tx.execute("INSERT INTO acct VALUES (?, ?)", [2, 50]);
      return tx.execute("SELECT sum(bal) FROM acct");
    });
    assert.deepEqual(seen, [[150]], "statements of the transaction see each other");
    await assert.rejects(c.transaction(async (tx) => {
      await tx.execute("UPDATE acct SET bal = bal - 10 WHERE id = 1");
      throw new Error("application says no");
    }), /application says no/);
    assert.deepEqual(await c.execute("SELECT id, bal FROM acct ORDER BY id"), [[1, 100], [2, 50]], "committed, then rolled back");
    // A failing statement inside: the error keeps its code, and the transaction is rolled back.
    const e = await c.transaction(async (tx) => {
      await tx.execute("UPDATE acct SET bal = 0 WHERE id = 2");
      await tx.execute("INSERT INTO acct VALUES (?, ?)", [1, 1]);
    }).catch((x: unknown) => x);
    assert.ok(e instanceof HranaClientError, String(e));
    assert.equal(e.code, "SQLITE_CONSTRAINT");
    assert.match(e.message, /UNIQUE constraint failed/);
    assert.equal(c.isRetryable(e), false);
    assert.deepEqual(await c.execute("SELECT bal FROM acct WHERE id = 2"), [[50]]);
    assert.equal(await openStreams(), 0, "COMMIT and ROLLBACK close their streams");
  });

  it("reports SQLITE_BUSY when another transaction holds the write lock, as retryable", async () => {
    const a = client();
    const b = client();
    await a.execute("CREATE TABLE busy (id INTEGER PRIMARY KEY)");
    let release!: () => void;
    const holding = new Promise<void>((r) => (release = r));
    let began!: () => void;
    const begun = new Promise<void>((r) => (began = r));
    const first = a.transaction(async (tx) => {
      await tx.execute("INSERT INTO busy VALUES (1)");
      began();
      await holding;
    });
    await begun;
    const e = await b.transaction(async (tx) => tx.execute("INSERT INTO busy VALUES (2)")).catch((x: unknown) => x);
    assert.ok(e instanceof HranaClientError, String(e));
    assert.equal(e.code, "SQLITE_BUSY");
    assert.equal(b.isRetryable(e), true);
    release();
    await first;
    // The retry succeeds once the lock is free; the failed BEGIN left no stream behind.
    await b.transaction(async (tx) => tx.execute("INSERT INTO busy VALUES (2)"));
    assert.deepEqual(await b.execute("SELECT id FROM busy ORDER BY id"), [[1], [2]]);
    assert.equal(await openStreams(), 0);
  });

  it("surfaces a whole-request failure with its code and HTTP status", async () => {
    const c = client();
    const e = await c.pipeline("not-a-baton", [{ type: "close" }]).catch((x: unknown) => x);
    assert.ok(e instanceof HranaClientError, String(e));
    assert.equal(e.code, "BATON_INVALID");
    assert.equal(e.status, 400);
  });
});
