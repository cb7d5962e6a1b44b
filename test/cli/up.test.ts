/**
 * `borealis up` end to end, as a user runs it: the summary, SQL through @libsql/client at the printed
 * URL, status, a killed node restarted by the supervisor, a clean Ctrl-C, and the same cluster — with
 * the same data — back from the same DIR.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { createClient } from "@libsql/client";
import { MAIN_JS, freePortRange, runCli } from "./helpers.js";

interface Up {
  readonly result: Promise<{ code: number | null; stdout: string; stderr: string }>;
  readonly pid: number;
  stdout(): string;
  stderr(): string;
  kill(signal: NodeJS.Signals): void;
}

function startUp(args: string[]): Up {
  const child = spawn(process.execPath, [MAIN_JS, "up", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b: Buffer) => { stdout += b.toString(); });
  child.stderr.on("data", (b: Buffer) => { stderr += b.toString(); });
  const result = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on("close", (code) => resolve({ code, stdout, stderr })));
  return { result, pid: child.pid!, stdout: () => stdout, stderr: () => stderr, kill: (s) => { child.kill(s); } };
}

async function until(cond: () => boolean, timeoutMs: number, what: string, up?: Up): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\nstdout: ${up?.stdout()}\nstderr: ${up?.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function nodePids(summary: string): Map<string, number> {
  const pids = new Map<string, number>();
  for (const m of summary.matchAll(/^\s+(n\d)\s+[abc]\s+127\.0\.0\.1:\d+\s+(\d+)\s/gm)) pids.set(m[1]!, Number(m[2]));
  return pids;
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test("borealis up: a local cluster from one command, supervised, stopped by Ctrl-C, back from the same DIR", { timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), "borealis-up-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const base = await freePortRange(8);
  const writerPort = base + 7;
  const args = ["--data", dir, "--control-plane-port", String(base), "--storage-base-port", String(base + 1), "--ready-timeout-ms", "30000",
    "--port", String(writerPort), "--cache-mb", "32"];

  const up = startUp(args);
  t.after(() => { if (isAlive(up.pid)) up.kill("SIGKILL"); });
  const first = await Promise.race([up.result, until(() => /Borealis is running/.test(up.stdout()), 60_000, "the cluster", up).then(() => null)]);
  if (first !== null) {
    // It exited before it was up: it must be for a reason it states clearly.
    assert.equal(first.code, 1, first.stderr);
    assert.fail(`borealis up failed:\n${first.stderr}`);
  }

  const summary = up.stdout();
  const url = `http://127.0.0.1:${base}`;
  assert.match(summary, new RegExp(`control plane +${url.replace(/\./g, "\\.")}`));
  const writerUrl = `http://127.0.0.1:${writerPort}`;
  assert.match(summary, new RegExp(`writer +${writerUrl.replace(/\./g, "\\.")}`));
  assert.match(summary, /createClient\(\{ url: /);

  // The printed URL is a SQL database for the client applications already use.
  const db = createClient({ url: writerUrl });
  await db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
  await db.batch([
    { sql: "INSERT INTO notes (body) VALUES (?)", args: ["the log is the database"] },
    { sql: "INSERT INTO notes (body) VALUES (?)", args: ["4 of 6"] },
  ], "write");
  assert.equal((await db.execute("SELECT count(*) AS n FROM notes")).rows[0]!["n"], 2);
  db.close();
  const pids = nodePids(summary);
  assert.deepEqual([...pids.keys()], ["n1", "n2", "n3", "n4", "n5", "n6"]);

  const status = await runCli(["status", "--json", "--control-plane", url]);
  assert.equal(status.code, 0, status.stderr);
  const report = JSON.parse(status.stdout) as { nodes: { nodeId: string; az: string; alive: boolean; state: { reachable: boolean } }[] };
  assert.deepEqual(report.nodes.map((n) => [n.nodeId, n.az, n.alive, n.state.reachable]),
    ["a", "a", "b", "b", "c", "c"].map((az, i) => [`n${i + 1}`, az, true, true]));

  // A node that dies is reported and restarted.
  process.kill(pids.get("n3")!, "SIGKILL");
  await until(() => /storage node n3 \(pid \d+\) exited unexpectedly/.test(up.stderr()) && /storage node n3 restarted/.test(up.stderr()), 20_000, "n3 restarted", up);

  up.kill("SIGINT");
  const stopped = await up.result;
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.match(stopped.stdout, /Cluster stopped\./);
  await until(() => [...pids.values()].every((p) => !isAlive(p)), 5000, "every node process gone");

  // Same DIR, no port flags: the same cluster comes back.
  const again = startUp(["--data", dir, "--port", String(writerPort), "--cache-mb", "32"]);
  t.after(() => { if (isAlive(again.pid)) again.kill("SIGKILL"); });
  await until(() => /Borealis is running/.test(again.stdout()), 60_000, "the cluster again", again);
  assert.match(again.stdout(), /Starting the local cluster/);
  assert.match(again.stdout(), new RegExp(`127\\.0\\.0\\.1:${base + 6}`));
  const db2 = createClient({ url: writerUrl });
  const rows = (await db2.execute("SELECT body FROM notes ORDER BY id")).rows.map((r) => r["body"]);
  assert.deepEqual(rows, ["the log is the database", "4 of 6"], "the data is back");
  db2.close();
  again.kill("SIGTERM");
  assert.equal((await again.result).code, 0);
});
