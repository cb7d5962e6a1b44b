/**
 * The writer over a real cluster (seven processes on loopback): a database spread over many small
 * protection groups, the writer killed with SIGKILL and restarted, every acknowledged row back and
 * SQLite's own integrity check clean.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { ProcessCluster } from "../../src/testing/process-cluster.js";

test("kill -9 the writer: after restart every acknowledged row is there and the database is intact", { timeout: 120_000 }, async (t) => {
  const cluster = await ProcessCluster.start({ pgPages: 16, cacheMb: 32 });
  t.after(() => cluster.destroy());
  let db = createClient({ url: cluster.writerUrl });
  await db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, payload BLOB NOT NULL, note TEXT)");
  const acked: number[] = [];
  for (let i = 1; i <= 300; i++) {
    await db.execute({ sql: "INSERT INTO items (id, payload, note) VALUES (?, ?, ?)", args: [i, new Uint8Array(700).fill(i % 256), `row ${i}`] });
    acked.push(i);
  }
  const volume = await cluster.api.getVolume("default" as never);
  assert.ok(volume.pgs.length >= 3, `the database spans ${volume.pgs.length} protection groups`);
  db.close();

  await cluster.kill(cluster.writer);
  const restartMs = await cluster.startWriter();
  t.diagnostic(`writer restart (process start to serving): ${restartMs.toFixed(0)} ms`);
  db = createClient({ url: cluster.writerUrl });
  const rows = (await db.execute("SELECT id, length(payload) AS n, note FROM items ORDER BY id")).rows;
  assert.deepEqual(rows.map((r) => Number(r["id"])), acked);
  assert.ok(rows.every((r) => Number(r["n"]) === 700 && r["note"] === `row ${Number(r["id"])}`));
  assert.equal((await db.execute("PRAGMA integrity_check")).rows[0]![0], "ok");
  await db.execute({ sql: "INSERT INTO items (id, payload) VALUES (?, ?)", args: [1000, new Uint8Array(10)] });
  assert.equal((await db.execute("SELECT count(*) FROM items")).rows[0]![0], 301);
  db.close();
});
