/**
 * The Hrana endpoint's conformance suite: the real `@libsql/client` (and raw HTTP where the client
 * cannot reach) against `startHranaServer` on 127.0.0.1, over any `SqlEngine`.
 *
 * `endpointConformanceSuite(makeEngine)` registers the tests; `hrana-http.test.ts` runs it over the
 * test-only better-sqlite3 engine, and the same cases run against the real engine by passing its
 * factory. Each test uses its own tables, so the order of tests does not matter.
 *
 * `clientConformanceSuite(makeTarget)` registers the same client-level cases against any endpoint URL
 * (test/e2e runs them against a real cluster's writer). It leaves out the "limits" cases, which need a
 * server started with special options. Where the engine form counts the engine's open sessions, a URL
 * target counts the server's open streams (`GET /health`): each stream holds one session.
 *
 * What the suite asks of an engine (beyond SQL): sessions are isolated connections on one database;
 * `BEGIN TRANSACTION READONLY` is accepted and makes the transaction read-only; bare named parameters
 * are resolved; 64-bit integers are exact; errors are `SqliteError` with SQLite's code names;
 * `close()` rolls back; `isAutocommit()` is true outside explicit transactions.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createClient, LibsqlError, type Client } from "@libsql/client";
import type { SqlEngine, SqlSession } from "../../src/compute/sql-engine.js";
import { realEnv, silentLogger } from "../../src/env/real.js";
import { startHranaServer, type HranaServer, type HranaServerOptions } from "../../src/endpoint/hrana-http.js";

export type EngineFactory = () => SqlEngine | Promise<SqlEngine>;

/** An endpoint to run the client-level cases against. */
export interface ConformanceTarget {
  readonly url: string;
  /** Sessions the server holds open now (the suite checks that finished streams release theirs). */
  openSessions(): number | Promise<number>;
  close(): Promise<void>;
}

export type TargetFactory = () => ConformanceTarget | Promise<ConformanceTarget>;

/** Wraps an engine to count sessions that are open (the suite checks that streams release them). */
function counting(engine: SqlEngine): SqlEngine & { open(): number } {
  let open = 0;
  return {
    open: () => open,
    openSession(): SqlSession {
      const s = engine.openSession();
      open++;
      let closed = false;
      return {
        execute: (st) => s.execute(st),
        executeScript: (sql) => s.executeScript(sql),
        describe: (sql) => s.describe(sql),
        isAutocommit: () => s.isAutocommit(),
        close: async () => {
          if (!closed) {
            closed = true;
            open--;
          }
          await s.close();
        },
      };
    },
    close: () => engine.close(),
  };
}

interface Harness {
  engine: SqlEngine & { open(): number };
  server: HranaServer;
}

async function startHarness(makeEngine: EngineFactory, options: Partial<HranaServerOptions> = {}): Promise<Harness> {
  const engine = counting(await makeEngine());
  const env = realEnv({ log: silentLogger });
  const server = await startHranaServer(env, engine, { listen: { host: "127.0.0.1", port: 0 }, version: "test", ...options });
  return { engine, server };
}

async function stopHarness(h: Harness | undefined): Promise<void> {
  if (h === undefined) return;
  await h.server.close();
  await h.engine.close();
}

async function post(url: string, path: string, body: unknown): Promise<{ status: number; json: any; text: string; type: string | null }> {
  const res = await fetch(url + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, type: res.headers.get("content-type") };
}

const int = (v: bigint | number) => ({ type: "integer", value: String(v) });
const text = (v: string) => ({ type: "text", value: v });
const stmt = (sql: string, args: unknown[] = []) => ({ sql, args });

async function rejects(p: Promise<unknown>, check: (e: LibsqlError) => void): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof LibsqlError, `expected a LibsqlError, got ${String(e)}`);
    check(e);
    return;
  }
  assert.fail("expected the promise to reject");
}

async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail("condition not reached in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Open Hrana streams as the endpoint's `GET /health` reports them. */
export async function openStreamsByHealth(url: string): Promise<number> {
  const res = await fetch(url + "/health", { signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { streams?: unknown };
  if (typeof body.streams !== "number") throw new Error(`${url}/health does not report "streams"`);
  return body.streams;
}

export function endpointConformanceSuite(makeEngine: EngineFactory, suiteName = "engine"): void {
  clientCases(async () => {
    const h = await startHarness(makeEngine);
    return { url: h.server.url, openSessions: () => h.engine.open(), close: () => stopHarness(h) };
  }, `Hrana endpoint conformance over ${suiteName}`);
  limitCases(makeEngine, suiteName);
}

/** The client-level cases against an endpoint at a URL (no server options needed). */
export function clientConformanceSuite(makeTarget: TargetFactory, suiteName: string): void {
  clientCases(makeTarget, `Hrana endpoint conformance over ${suiteName}`);
}

function clientCases(makeTarget: TargetFactory, title: string): void {
  describe(title, () => {
    let target: ConformanceTarget | undefined;
    let client: Client;
    let url: string;
    const openSessions = async (): Promise<number> => target!.openSessions();

    before(async () => {
      target = await makeTarget();
      url = target.url;
      client = createClient({ url, intMode: "bigint" });
    });

    after(async () => {
      client?.close();
      await target?.close();
    });

    // ------------------------------------------------------------------------------- execute & values

    it("executes statements and reports columns, rows, changes and rowids", async () => {
      await client.execute("CREATE TABLE ex (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL)");
      const ins = await client.execute({ sql: "INSERT INTO ex (name, score) VALUES (?, ?), (?, ?)", args: ["a", 1.5, "b", 2.5] });
      assert.equal(ins.rowsAffected, 2);
      assert.equal(ins.lastInsertRowid, 2n);
      const rs = await client.execute("SELECT id, name, score AS s FROM ex ORDER BY id");
      assert.deepEqual(rs.columns, ["id", "name", "s"]);
      assert.deepEqual(rs.columnTypes, ["INTEGER", "TEXT", "REAL"]);
      assert.equal(rs.rows.length, 2);
      assert.equal(rs.rows[0]!["id"], 1n);
      assert.equal(rs.rows[0]!["name"], "a");
      assert.equal(rs.rows[1]!["s"], 2.5);
      assert.equal(await openSessions(), 0, "execute's stream is closed in the same request");
    });

    it("round-trips every value type, positional, including blobs and 64-bit integers beyond 2^53", async () => {
      const blob = new Uint8Array([0, 1, 2, 250, 255]);
      const big = 2n ** 62n + 12345n;
      const rs = await client.execute({
        sql: "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?",
        args: [null, 9223372036854775807n, -9223372036854775808n, big, 1.5, "héllo ✓ 𝄞", blob, new Uint8Array(0), true, -0.25],
      });
      const row = rs.rows[0]!;
      assert.equal(row[0], null);
      assert.equal(row[1], 9223372036854775807n);
      assert.equal(row[2], -9223372036854775808n);
      assert.equal(row[3], big);
      assert.equal(row[4], 1.5);
      assert.equal(row[5], "héllo ✓ 𝄞");
      assert.deepEqual(new Uint8Array(row[6] as ArrayBuffer), blob);
      assert.equal((row[7] as ArrayBuffer).byteLength, 0);
      assert.equal(row[8], 1n, "booleans travel as integers");
      assert.equal(row[9], -0.25);

      await client.execute("CREATE TABLE bigs (k INTEGER PRIMARY KEY, v INTEGER, b BLOB)");
      const huge = 2n ** 53n + 1n; // not representable as a JS number
      await client.execute({ sql: "INSERT INTO bigs VALUES (?, ?, ?)", args: [huge, -huge, blob] });
      const back = await client.execute({ sql: "SELECT k, v, b FROM bigs WHERE k = ?", args: [huge] });
      assert.equal(back.rows[0]!["k"], huge);
      assert.equal(back.rows[0]!["v"], -huge);
      assert.deepEqual(new Uint8Array(back.rows[0]!["b"] as ArrayBuffer), blob);
    });

    it("binds named parameters with and without their prefix", async () => {
      const rs = await client.execute({
        sql: "SELECT :a AS a, @b AS b, $c AS c, :d AS d, :e AS e",
        args: { a: 7n, "@b": "bee", $c: new Uint8Array([9]), ":d": null, e: 2.75 },
      });
      const row = rs.rows[0]!;
      assert.equal(row["a"], 7n);
      assert.equal(row["b"], "bee");
      assert.deepEqual(new Uint8Array(row["c"] as ArrayBuffer), new Uint8Array([9]));
      assert.equal(row["d"], null);
      assert.equal(row["e"], 2.75);
    });

    it("binds integral JS numbers as integers (LIMIT ?, concatenation, typeof)", async () => {
      const rs = await client.execute({ sql: "SELECT typeof(?) AS t, 'id-' || ? AS s, typeof(?) AS f", args: [5, 5, 5.5] });
      assert.equal(rs.rows[0]!["t"], "integer");
      assert.equal(rs.rows[0]!["s"], "id-5");
      assert.equal(rs.rows[0]!["f"], "real");
      const lim = await client.execute({ sql: "SELECT value FROM (SELECT 1 AS value UNION ALL SELECT 2 UNION ALL SELECT 3) LIMIT ?", args: [2] });
      assert.equal(lim.rows.length, 2);
    });

    it("returns infinite floats as ±Infinity", async () => {
      const rs = await client.execute("SELECT 1e308 * 10 AS p, -1e308 * 10 AS n");
      assert.equal(rs.rows[0]!["p"], Infinity);
      assert.equal(rs.rows[0]!["n"], -Infinity);
    });

    it("reports SQLite errors with sqld's codes", async () => {
      await client.execute("CREATE TABLE uniq (id INTEGER PRIMARY KEY, email TEXT UNIQUE, n INTEGER NOT NULL)");
      await client.execute("INSERT INTO uniq VALUES (1, 'a@x', 1)");
      await rejects(client.execute("INSERT INTO uniq VALUES (1, 'b@x', 1)"), (e) => {
        assert.equal(e.code, "SQLITE_CONSTRAINT");
        assert.match(e.message, /UNIQUE constraint failed: uniq\.id/);
      });
      await rejects(client.execute("INSERT INTO uniq VALUES (2, 'a@x', 1)"), (e) => assert.equal(e.code, "SQLITE_CONSTRAINT"));
      await rejects(client.execute("INSERT INTO uniq VALUES (3, 'c@x', NULL)"), (e) => assert.equal(e.code, "SQLITE_CONSTRAINT"));
      await rejects(client.execute("SELEC 1"), (e) => assert.equal(e.code, "SQLITE_ERROR"));
      await rejects(client.execute("SELECT * FROM no_such_table"), (e) => {
        assert.equal(e.code, "SQLITE_ERROR");
        assert.match(e.message, /no such table/);
      });
      // The extended code travels too (as `extended_code`, which @libsql/client does not read yet).
      const raw = await post(url, "/v2/pipeline", { baton: null, requests: [{ type: "execute", stmt: stmt("INSERT INTO uniq VALUES (9, 'a@x', 1)") }, { type: "close" }] });
      assert.equal(raw.status, 200);
      assert.equal(raw.json.results[0].type, "error");
      assert.equal(raw.json.results[0].error.code, "SQLITE_CONSTRAINT");
      assert.equal(raw.json.results[0].error.extended_code, "SQLITE_CONSTRAINT_UNIQUE");
      assert.equal(raw.json.results[0].error.raw_code, 2067);
      assert.equal(raw.json.results[1].type, "ok", "the request after a failed one still runs");
      assert.equal(raw.json.baton, null);
    });

    // ------------------------------------------------------------------------------------- batches

    for (const mode of ["write", "deferred"] as const) {
      it(`batch in "${mode}" mode commits all statements, or none when one fails`, async () => {
        const t = `batch_${mode}`;
        await client.execute(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, v TEXT)`);
        const results = await client.batch([
          { sql: `INSERT INTO ${t} VALUES (?, ?)`, args: [1n, "one"] },
          { sql: `INSERT INTO ${t} VALUES (?, ?)`, args: [2n, "two"] },
          `SELECT count(*) AS n FROM ${t}`,
        ], mode);
        assert.equal(results.length, 3);
        assert.equal(results[0]!.rowsAffected, 1);
        assert.equal(results[2]!.rows[0]!["n"], 2n);

        await rejects(client.batch([
          { sql: `INSERT INTO ${t} VALUES (?, ?)`, args: [3n, "three"] },
          { sql: `INSERT INTO ${t} VALUES (?, ?)`, args: [1n, "duplicate"] },
          { sql: `INSERT INTO ${t} VALUES (?, ?)`, args: [4n, "four"] },
        ], mode), (e) => {
          assert.equal(e.code, "SQLITE_CONSTRAINT");
          assert.equal((e as LibsqlError & { statementIndex?: number }).statementIndex, 1);
        });
        const rs = await client.execute(`SELECT id FROM ${t} ORDER BY id`);
        assert.deepEqual(rs.rows.map((r) => r["id"]), [1n, 2n], "the failed batch was rolled back");
        assert.equal(await openSessions(), 0);
      });
    }

    it(`batch in "read" mode reads, and refuses to write`, async () => {
      await client.execute("CREATE TABLE batch_read (id INTEGER PRIMARY KEY)");
      await client.execute("INSERT INTO batch_read VALUES (1), (2)");
      const results = await client.batch(["SELECT count(*) AS n FROM batch_read", "SELECT max(id) AS m FROM batch_read"], "read");
      assert.equal(results[0]!.rows[0]!["n"], 2n);
      assert.equal(results[1]!.rows[0]!["m"], 2n);
      await rejects(client.batch(["SELECT 1", "INSERT INTO batch_read VALUES (3)"], "read"), (e) => {
        assert.match(String(e.code), /^SQLITE_/);
      });
      const rs = await client.execute("SELECT count(*) AS n FROM batch_read");
      assert.equal(rs.rows[0]!["n"], 2n);
      // The read-only state ends with the transaction: the next stream writes normally.
      await client.execute("INSERT INTO batch_read VALUES (3)");
    });

    it("executeMultiple runs a sequence; migrate runs a batch", async () => {
      await client.executeMultiple("CREATE TABLE seq (a); INSERT INTO seq VALUES (1); INSERT INTO seq VALUES (2);");
      const rs = await client.execute("SELECT sum(a) AS s FROM seq");
      assert.equal(rs.rows[0]!["s"], 3n);
      await rejects(client.executeMultiple("INSERT INTO seq VALUES (3); INSERT INTO nope VALUES (1); INSERT INTO seq VALUES (4);"), (e) => {
        assert.equal(e.code, "SQLITE_ERROR");
      });
      const after = await client.execute("SELECT count(*) AS n FROM seq");
      assert.equal(after.rows[0]!["n"], 3n, "a sequence stops at the first failure (no transaction: earlier statements stay)");
      await client.migrate(["CREATE TABLE mig (x)", "INSERT INTO mig VALUES (1)"]);
      assert.equal((await client.execute("SELECT x FROM mig")).rows[0]!["x"], 1n);
    });

    // --------------------------------------------------------------------------------- transactions

    it("interactive write transaction: commit, and isolation from other streams until then", async () => {
      await client.execute("CREATE TABLE tx_w (id INTEGER PRIMARY KEY, v TEXT)");
      const tx = await client.transaction("write");
      await tx.execute({ sql: "INSERT INTO tx_w VALUES (?, ?)", args: [1n, "a"] });
      const inside = await tx.execute("SELECT count(*) AS n FROM tx_w");
      assert.equal(inside.rows[0]!["n"], 1n);
      const outside = await client.execute("SELECT count(*) AS n FROM tx_w");
      assert.equal(outside.rows[0]!["n"], 0n, "uncommitted rows are invisible to other streams");
      await tx.batch([{ sql: "INSERT INTO tx_w VALUES (?, ?)", args: [2n, "b"] }, "UPDATE tx_w SET v = upper(v)"]);
      await tx.commit();
      assert.ok(tx.closed);
      const rs = await client.execute("SELECT v FROM tx_w ORDER BY id");
      assert.deepEqual(rs.rows.map((r) => r["v"]), ["A", "B"]);
      await waitFor(async () => (await openSessions()) === 0, 2000);
    });

    it("interactive write transaction: rollback, also after a failed statement", async () => {
      await client.execute("CREATE TABLE tx_r (id INTEGER PRIMARY KEY)");
      const tx = await client.transaction("write");
      await tx.execute("INSERT INTO tx_r VALUES (1)");
      await rejects(tx.execute("INSERT INTO tx_r VALUES (1)"), (e) => assert.equal(e.code, "SQLITE_CONSTRAINT"));
      await tx.execute("INSERT INTO tx_r VALUES (2)"); // still in the transaction
      await tx.rollback();
      const rs = await client.execute("SELECT count(*) AS n FROM tx_r");
      assert.equal(rs.rows[0]!["n"], 0n);
      await waitFor(async () => (await openSessions()) === 0, 2000);
    });

    it("interactive read and deferred transactions", async () => {
      await client.execute("CREATE TABLE tx_rd (id INTEGER PRIMARY KEY)");
      await client.execute("INSERT INTO tx_rd VALUES (1)");
      const rtx = await client.transaction("read");
      assert.equal((await rtx.execute("SELECT count(*) AS n FROM tx_rd")).rows[0]!["n"], 1n);
      await rejects(rtx.execute("INSERT INTO tx_rd VALUES (2)"), (e) => assert.match(String(e.code), /^SQLITE_/));
      await rtx.commit();

      const dtx = await client.transaction("deferred");
      await dtx.execute("INSERT INTO tx_rd VALUES (3)");
      await dtx.commit();
      const rs = await client.execute("SELECT id FROM tx_rd ORDER BY id");
      assert.deepEqual(rs.rows.map((r) => r["id"]), [1n, 3n]);
      await waitFor(async () => (await openSessions()) === 0, 2000);
    });

    it("serves many clients at once", async () => {
      await client.execute("CREATE TABLE conc (id INTEGER PRIMARY KEY, v INTEGER)");
      const others = Array.from({ length: 8 }, () => createClient({ url, intMode: "bigint" }));
      try {
        await Promise.all(others.map((c, i) => c.execute({ sql: "INSERT INTO conc VALUES (?, ?)", args: [BigInt(i), BigInt(i * i)] })));
        const reads = await Promise.all(others.map((c) => c.execute("SELECT count(*) AS n FROM conc")));
        for (const r of reads) assert.equal(r.rows[0]!["n"], 8n);
      } finally {
        for (const c of others) c.close();
      }
    });

    // ------------------------------------------------------------------------------ raw protocol

    it("evaluates every batch condition type", async () => {
      const steps = [
        { stmt: stmt("SELECT 1") },                                                         // 0 ok
        { stmt: stmt("SELECT * FROM no_such") },                                            // 1 error
        { condition: { type: "ok", step: 0 }, stmt: stmt("SELECT 2") },                     // 2 runs
        { condition: { type: "ok", step: 1 }, stmt: stmt("SELECT 3") },                     // 3 skipped
        { condition: { type: "error", step: 1 }, stmt: stmt("SELECT 4") },                  // 4 runs
        { condition: { type: "error", step: 3 }, stmt: stmt("SELECT 5") },                  // 5 skipped (3 was skipped)
        { condition: { type: "not", cond: { type: "ok", step: 3 } }, stmt: stmt("SELECT 6") }, // 6 runs
        { condition: { type: "and", conds: [{ type: "ok", step: 0 }, { type: "error", step: 1 }] }, stmt: stmt("SELECT 7") }, // 7 runs
        { condition: { type: "and", conds: [{ type: "ok", step: 0 }, { type: "ok", step: 1 }] }, stmt: stmt("SELECT 8") },    // 8 skipped
        { condition: { type: "or", conds: [{ type: "ok", step: 1 }, { type: "ok", step: 3 }] }, stmt: stmt("SELECT 9") },     // 9 skipped
        { condition: { type: "or", conds: [{ type: "ok", step: 1 }, { type: "ok", step: 2 }] }, stmt: stmt("SELECT 10") },    // 10 runs
        { condition: { type: "is_autocommit" }, stmt: stmt("BEGIN") },                      // 11 runs
        { condition: { type: "is_autocommit" }, stmt: stmt("SELECT 12") },                  // 12 skipped: in a transaction
        { condition: { type: "not", cond: { type: "is_autocommit" } }, stmt: stmt("COMMIT") }, // 13 runs
        { condition: { type: "and", conds: [] }, stmt: stmt("SELECT 14") },                 // 14 runs (empty and)
        { condition: { type: "or", conds: [] }, stmt: stmt("SELECT 15") },                  // 15 skipped (empty or)
      ];
      const r = await post(url, "/v3/pipeline", { baton: null, requests: [{ type: "batch", batch: { steps } }, { type: "close" }] });
      assert.equal(r.status, 200, r.text);
      const { step_results, step_errors } = r.json.results[0].response.result;
      const ran = step_results.map((x: unknown, i: number) => (x !== null ? "ok" : step_errors[i] !== null ? "error" : "skipped"));
      assert.deepEqual(ran, ["ok", "error", "ok", "skipped", "ok", "skipped", "ok", "ok", "skipped", "skipped", "ok", "ok", "skipped", "ok", "ok", "skipped"]);
      assert.equal(step_errors[1].code, "SQLITE_ERROR");
      assert.deepEqual(step_results[10].rows, [[int(10)]]);
    });

    it("keeps stored SQL per stream, answers get_autocommit, describe and sequence", async () => {
      const first = await post(url, "/v3/pipeline", {
        baton: null,
        requests: [
          { type: "store_sql", sql_id: 1, sql: "SELECT ? + 1 AS n" },
          { type: "execute", stmt: { sql_id: 1, args: [int(41)] } },
          { type: "get_autocommit" },
          { type: "sequence", sql: "CREATE TABLE IF NOT EXISTS raw_seq (x); BEGIN; INSERT INTO raw_seq VALUES (1);" },
          { type: "get_autocommit" },
          { type: "describe", sql: "SELECT x AS y FROM raw_seq WHERE x = :v" },
          { type: "store_sql", sql_id: 1, sql: "SELECT 2" },
          { type: "execute", stmt: { sql_id: 2 } },
        ],
      });
      assert.equal(first.status, 200, first.text);
      const res = first.json.results;
      assert.equal(res[0].type, "ok");
      assert.deepEqual(res[1].response.result.rows, [[int(42)]]);
      assert.equal(res[2].response.is_autocommit, true);
      assert.equal(res[3].response.type, "sequence");
      assert.equal(res[4].response.is_autocommit, false);
      const d = res[5].response.result;
      assert.deepEqual(d.params, [{ name: ":v" }]);
      assert.equal(d.cols[0].name, "y");
      assert.equal(d.is_explain, false);
      assert.equal(d.is_readonly, true);
      assert.equal(res[6].error.code, "SQL_EXISTS");
      assert.equal(res[7].error.code, "SQL_NOT_FOUND");
      assert.equal(typeof first.json.baton, "string");

      // Same stream, next request: the stored SQL and the open transaction are still there.
      const second = await post(url, "/v3/pipeline", {
        baton: first.json.baton,
        requests: [
          { type: "execute", stmt: { sql_id: 1, args: [int(1)] } },
          { type: "close_sql", sql_id: 1 },
          { type: "close_sql", sql_id: 77 },
          { type: "execute", stmt: { sql_id: 1, args: [int(1)] } },
          { type: "execute", stmt: stmt("ROLLBACK") },
          { type: "get_autocommit" },
          { type: "close" },
          { type: "execute", stmt: stmt("SELECT 1") },
        ],
      });
      assert.equal(second.status, 200, second.text);
      const r2 = second.json.results;
      assert.deepEqual(r2[0].response.result.rows, [[int(2)]]);
      assert.equal(r2[1].type, "ok");
      assert.equal(r2[2].type, "ok", "closing an unknown sql_id is not an error");
      assert.equal(r2[3].error.code, "SQL_NOT_FOUND");
      assert.equal(r2[5].response.is_autocommit, true);
      assert.equal(r2[6].response.type, "close");
      assert.equal(r2[7].error.code, "STREAM_CLOSED");
      assert.equal(second.json.baton, null);

      // Stored SQL is scoped to its stream.
      const other = await post(url, "/v2/pipeline", { baton: null, requests: [{ type: "execute", stmt: { sql_id: 1 } }, { type: "close" }] });
      assert.equal(other.json.results[0].error.code, "SQL_NOT_FOUND");
      await waitFor(async () => (await openSessions()) === 0, 2000);
    });

    it("honours want_rows: false, and answers unknown request types with an error result", async () => {
      const r = await post(url, "/v2/pipeline", {
        baton: null,
        requests: [
          { type: "execute", stmt: { sql: "SELECT 1 UNION ALL SELECT 2", want_rows: false } },
          { type: "frobnicate" },
          { type: "close" },
        ],
      });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json.results[0].response.result.rows, []);
      assert.equal(r.json.results[0].response.result.cols.length, 1);
      assert.equal(r.json.results[1].error.code, "UNKNOWN_REQUEST");
    });

    it("serves /v3/cursor as newline-delimited JSON", async () => {
      const r = await post(url, "/v3/cursor", {
        baton: null,
        batch: { steps: [{ stmt: stmt("SELECT 1 AS a UNION ALL SELECT 2") }, { stmt: stmt("SELECT * FROM nope") }, { condition: { type: "ok", step: 1 }, stmt: stmt("SELECT 3") }] },
      });
      assert.equal(r.status, 200);
      const lines = r.text.trim().split("\n").map((l) => JSON.parse(l));
      assert.equal(typeof lines[0].baton, "string");
      assert.deepEqual(lines.slice(1).map((e: { type: string }) => e.type), ["step_begin", "row", "row", "step_end", "step_error"]);
      assert.deepEqual(lines[2].row, [int(1)]);
      assert.equal(lines[5].step, 1);
      const close = await post(url, "/v3/pipeline", { baton: lines[0].baton, requests: [{ type: "close" }] });
      assert.equal(close.json.baton, null);
    });

    it("rejects invalid and reused batons", async () => {
      const bad = await post(url, "/v2/pipeline", { baton: "not-a-baton", requests: [] });
      assert.equal(bad.status, 400);
      assert.equal(bad.json.code, "BATON_INVALID");
      const open = await post(url, "/v2/pipeline", { baton: null, requests: [] });
      const baton = open.json.baton as string;
      const forged = baton.slice(0, -2) + (baton.endsWith("AA") ? "BB" : "AA");
      assert.equal((await post(url, "/v2/pipeline", { baton: forged, requests: [] })).json.code, "BATON_INVALID");
      const next = await post(url, "/v2/pipeline", { baton, requests: [] });
      assert.equal(next.status, 200);
      assert.notEqual(next.json.baton, baton, "each response carries a new baton");
      const again = await post(url, "/v2/pipeline", { baton, requests: [] });
      assert.equal(again.status, 400);
      assert.equal(again.json.code, "BATON_REUSED");
      await post(url, "/v2/pipeline", { baton: next.json.baton, requests: [{ type: "close" }] });
    });

    // ---------------------------------------------------------------------------- bad requests

    it("answers malformed, oversized and misrouted requests with errors, and keeps serving", async () => {
      const cases: [unknown, RegExp][] = [
        ["{", /not valid JSON/],
        ["[]", /expected an object/],
        [{ requests: 5 }, /requests/],
        [{ baton: 5, requests: [] }, /baton/],
        [{ requests: [{ type: "execute", stmt: {} }] }, /exactly one of "sql" and "sql_id"/],
        [{ requests: [{ type: "execute", stmt: { sql: "SELECT ?", args: [{ type: "integer", value: "12x" }] } }] }, /decimal string/],
        [{ requests: [{ type: "execute", stmt: { sql: "SELECT ?", args: [{ type: "integer", value: "9223372036854775808" }] } }] }, /64 bits/],
        [{ requests: [{ type: "execute", stmt: { sql: "SELECT ?", args: [{ type: "blob", base64: "!!!" }] } }] }, /base64/],
        [{ requests: [{ type: "execute", stmt: { sql: "SELECT ?", args: [{ type: "float", value: "1.5" }] } }] }, /JSON number/],
        [{ requests: [{ type: "batch", batch: { steps: [{ condition: { type: "ok", step: 0 }, stmt: stmt("SELECT 1") }] } }] }, /earlier step/],
        [{ requests: [{ type: "batch", batch: { steps: [{ stmt: stmt("SELECT 1") }, { condition: { type: "maybe" }, stmt: stmt("SELECT 1") }] } }] }, /condition type/],
      ];
      for (const [body, message] of cases) {
        const r = await post(url, "/v2/pipeline", body);
        assert.equal(r.status, 400, `${JSON.stringify(body)} → ${r.status} ${r.text}`);
        assert.equal(r.type, "application/json");
        assert.equal(r.json.code, "PROTOCOL_ERROR");
        assert.match(r.json.message, message);
      }
      // A malformed pipeline runs nothing, not even its well-formed first request.
      await client.execute("CREATE TABLE nothing_ran (x)");
      const half = await post(url, "/v2/pipeline", { requests: [{ type: "execute", stmt: stmt("INSERT INTO nothing_ran VALUES (1)") }, { type: "execute" }] });
      assert.equal(half.status, 400);
      assert.equal((await client.execute("SELECT count(*) AS n FROM nothing_ran")).rows[0]!["n"], 0n);

      const big = JSON.stringify({ baton: null, requests: [{ type: "execute", stmt: stmt(`SELECT '${"x".repeat(11 * 1024 * 1024)}'`) }] });
      const tooBig = await post(url, "/v2/pipeline", big);
      assert.equal(tooBig.status, 413);
      assert.equal(tooBig.json.code, "REQUEST_TOO_LARGE");

      const notFound = await fetch(url + "/v9/pipeline", { method: "POST", body: "{}" });
      assert.equal(notFound.status, 404);
      assert.equal(((await notFound.json()) as any).code, "NOT_FOUND");
      const wrongMethod = await fetch(url + "/v2/pipeline");
      assert.equal(wrongMethod.status, 405);
      await wrongMethod.arrayBuffer();

      const rs = await client.execute("SELECT 'still serving' AS s");
      assert.equal(rs.rows[0]!["s"], "still serving");
      await waitFor(async () => (await openSessions()) === 0, 2000);
    });

    it("answers the version probes, /health and /version", async () => {
      const proto = await fetch(url + "/v3-protobuf");
      assert.equal(proto.status, 404, "no Protobuf: @libsql/client falls back to v2 JSON");
      await proto.arrayBuffer();
      for (const p of ["/v2", "/v3"]) {
        const r = await fetch(url + p);
        assert.equal(r.status, 200);
        await r.arrayBuffer();
      }
      const health = await fetch(url + "/health");
      assert.equal(health.status, 200);
      assert.equal(((await health.json()) as any).status, "ok");
      const version = await fetch(url + "/version");
      assert.equal(((await version.json()) as any).server, "borealis");
    });
  });

}

function limitCases(makeEngine: EngineFactory, suiteName: string): void {
  describe(`Hrana endpoint limits over ${suiteName}`, () => {
    let h: Harness | undefined;
    after(() => stopHarness(h));

    it("expires idle streams: a later request gets STREAM_EXPIRED and the transaction was rolled back", async () => {
      h = await startHarness(makeEngine, { idleStreamTimeoutMs: 150 });
      const client = createClient({ url: h.server.url, intMode: "bigint" });
      try {
        await client.execute("CREATE TABLE exp (id INTEGER PRIMARY KEY)");
        const tx = await client.transaction("write");
        await tx.execute("INSERT INTO exp VALUES (1)");
        assert.equal(h.server.streamCount(), 1);
        await waitFor(() => h!.server.streamCount() === 0, 3000);
        await rejects(tx.execute("INSERT INTO exp VALUES (2)"), (e) => {
          assert.equal(e.code, "STREAM_EXPIRED");
          assert.match(e.message, /expired/);
        });
        tx.close();
        await waitFor(() => h!.engine.open() === 0, 2000);
        assert.equal((await client.execute("SELECT count(*) AS n FROM exp")).rows[0]!["n"], 0n);
        // The write lock went with the rollback: a new write transaction commits.
        const tx2 = await client.transaction("write");
        await tx2.execute("INSERT INTO exp VALUES (3)");
        await tx2.commit();
        assert.equal((await client.execute("SELECT count(*) AS n FROM exp")).rows[0]!["n"], 1n);
      } finally {
        client.close();
      }
    });

    it("bounds open streams and reports unhealthy from the health callback", async () => {
      await stopHarness(h);
      let healthy = true;
      h = await startHarness(makeEngine, { maxStreams: 2, health: () => ({ ok: healthy, role: "writer" }) });
      const url = h.server.url;
      const a = await post(url, "/v2/pipeline", { baton: null, requests: [] });
      const b = await post(url, "/v2/pipeline", { baton: null, requests: [] });
      const c = await post(url, "/v2/pipeline", { baton: null, requests: [] });
      assert.equal(c.status, 503);
      assert.equal(c.json.code, "TOO_MANY_STREAMS");
      await post(url, "/v2/pipeline", { baton: a.json.baton, requests: [{ type: "close" }] });
      const d = await post(url, "/v2/pipeline", { baton: null, requests: [{ type: "close" }] });
      assert.equal(d.status, 200);
      await post(url, "/v2/pipeline", { baton: b.json.baton, requests: [{ type: "close" }] });

      const ok = await fetch(url + "/health");
      assert.deepEqual(await ok.json(), { status: "ok", role: "writer", streams: 0 });
      healthy = false;
      const down = await fetch(url + "/health");
      assert.equal(down.status, 503);
      assert.equal(((await down.json()) as any).status, "unavailable");
    });
  });
}
