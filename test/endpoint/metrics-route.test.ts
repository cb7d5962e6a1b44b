/**
 * `GET /metrics` on the Hrana endpoint: the `metrics` callback's JSON, 404 without a callback, 500 when
 * it fails or takes too long, 405 for other methods — and SQL keeps being served meanwhile.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { startHranaServer, type HranaServer, type HranaServerOptions } from "../../src/endpoint/hrana-http.js";
import { realEnv, silentLogger } from "../../src/env/real.js";
import { betterSqliteEngine } from "./better-sqlite3-engine.js";

describe("GET /metrics", () => {
  const servers: Array<{ server: HranaServer; close: () => Promise<void> }> = [];
  after(async () => {
    for (const s of servers) await s.close();
  });

  async function start(options: Partial<HranaServerOptions>): Promise<string> {
    const engine = betterSqliteEngine();
    const server = await startHranaServer(realEnv({ log: silentLogger }), engine, { listen: { host: "127.0.0.1", port: 0 }, ...options });
    servers.push({ server, close: async () => { await server.close(); await engine.close(); } });
    return server.url;
  }

  it("answers the callback's counters as JSON, fresh on every request", async () => {
    let calls = 0;
    const url = await start({ metrics: async () => ({ calls: ++calls, processes: [{ role: "writer", pid: process.pid }] }) });
    const a = await fetch(url + "/metrics");
    assert.equal(a.status, 200);
    assert.equal(a.headers.get("content-type"), "application/json");
    assert.deepEqual(await a.json(), { calls: 1, processes: [{ role: "writer", pid: process.pid }] });
    const b = await fetch(url + "/metrics");
    assert.equal(((await b.json()) as { calls: number }).calls, 2);

    const post = await fetch(url + "/metrics", { method: "POST", body: "{}" });
    assert.equal(post.status, 405);
    await post.arrayBuffer();

    const db = createClient({ url });
    try {
      assert.equal((await db.execute("SELECT 1 AS one")).rows[0]!["one"], 1);
    } finally {
      db.close();
    }
  });

  it("is 404 without a callback", async () => {
    const url = await start({});
    const r = await fetch(url + "/metrics");
    assert.equal(r.status, 404);
    assert.equal(((await r.json()) as { code: string }).code, "NOT_FOUND");
  });

  it("is 500 with the reason when the callback fails or takes longer than healthTimeoutMs", async () => {
    const failing = await start({ metrics: () => { throw new Error("no counters today"); } });
    const r = await fetch(failing + "/metrics");
    assert.equal(r.status, 500);
    assert.match(((await r.json()) as { message: string }).message, /no counters today/);

    const slow = await start({ healthTimeoutMs: 100, metrics: () => new Promise(() => {}) });
    const s = await fetch(slow + "/metrics");
    assert.equal(s.status, 500);
    assert.match(((await s.json()) as { message: string }).message, /longer than 100 ms/);
  });
});
