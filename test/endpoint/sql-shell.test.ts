/**
 * `borealis sql` as a user runs it: a real child process against the Hrana endpoint (over the
 * test-only better-sqlite3 engine) on 127.0.0.1, in `-c` mode and reading a script from stdin.
 *
 * The command is started through a one-line entry point that imports `src/cli/commands/sql.js` and
 * calls its `runSqlCommand`, so the test does not depend on how the CLI's main module registers commands.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { realEnv, silentLogger } from "../../src/env/real.js";
import { startHranaServer, type HranaServer } from "../../src/endpoint/hrana-http.js";
import { betterSqliteEngine } from "./better-sqlite3-engine.js";
import type { SqlEngine } from "../../src/compute/sql-engine.js";

const commandModule = fileURLToPath(new URL("../../src/cli/commands/sql.js", import.meta.url));
const cliMain = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
const entry = `const m = await import(${JSON.stringify(commandModule)}); process.exitCode = await m.runSqlCommand(process.argv.slice(1));`;

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runShell(args: string[], stdin = "", viaMain = false): Promise<RunResult> {
  const argv = viaMain ? [cliMain, "sql", ...args] : ["--input-type=module", "-e", entry, "--", ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, BOREALIS_URL: "" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => { stdout += d; });
    child.stderr.setEncoding("utf8").on("data", (d: string) => { stderr += d; });
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(stdin);
  });
}

describe("borealis sql", () => {
  let engine: SqlEngine;
  let server: HranaServer;

  before(async () => {
    engine = betterSqliteEngine();
    server = await startHranaServer(realEnv({ log: silentLogger }), engine, { listen: { host: "127.0.0.1", port: 0 } });
  });

  after(async () => {
    await server.close();
    await engine.close();
  });

  it("-c runs statements and prints aligned results", async () => {
    const r = await runShell([server.url, "-c", "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, big INTEGER); " +
      "INSERT INTO people VALUES (1, 'ada', 9223372036854775807), (2, 'grace', NULL); SELECT * FROM people ORDER BY id"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, [
      " id | name  | big",
      "----+-------+---------------------",
      "  1 | ada   | 9223372036854775807",
      "  2 | grace |                NULL",
      "(2 rows)",
      "",
    ].join("\n"));
    assert.equal(r.stderr, "");
  });

  it("-c exits non-zero on an error and stops there", async () => {
    const r = await runShell([server.url, "-c", "INSERT INTO people VALUES (1, 'dup', 0); INSERT INTO people VALUES (3, 'never', 0);"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /SQLITE_CONSTRAINT/);
    const check = await runShell([server.url, "-c", "SELECT count(*) AS n FROM people"]);
    assert.match(check.stdout, /^\s+2$/m);
  });

  it("reads a script from stdin: multi-line statements, transactions, dot commands", async () => {
    const script = [
      "BEGIN;",
      "INSERT INTO people",
      "  VALUES (10, 'in;tx', 1);",
      "INSERT INTO people VALUES (11, 'also', 2);",
      "COMMIT;",
      "BEGIN IMMEDIATE;",
      "INSERT INTO people VALUES (12, 'rolled back', 3);",
      "ROLLBACK;",
      ".tables",
      ".schema people",
      "SELECT id, name",
      "  FROM people",
      "  WHERE id >= 10 -- a comment; not the end",
      "  ORDER BY id;",
    ].join("\n");
    const r = await runShell([server.url], script);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^people$/m);
    assert.match(r.stdout, /CREATE TABLE people \(id INTEGER PRIMARY KEY, name TEXT, big INTEGER\);/);
    assert.match(r.stdout, / 10 \| in;tx\n 11 \| also\n\(2 rows\)/);
    assert.doesNotMatch(r.stdout, /rolled back/);
  });

  it("rolls back a transaction left open at the end of the input", async () => {
    const r = await runShell([server.url], "BEGIN;\nINSERT INTO people VALUES (20, 'dangling', 0);\n");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /rolled back/);
    const check = await runShell([server.url, "-c", "SELECT count(*) FROM people WHERE id = 20"]);
    assert.match(check.stdout, /^\s+0$/m);
  });

  it("runs as `borealis sql URL -c SQL` through the CLI's main", async () => {
    const r = await runShell([server.url, "-c", "SELECT 6 * 7 AS answer"], "", true);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, " answer\n--------\n     42\n(1 row)\n");
    const bad = await runShell([server.url, "-c", "SELECT * FROM missing"], "", true);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /no such table: missing/);
  });

  it("reports an unreachable server and bad usage", async () => {
    const down = await runShell(["http://127.0.0.1:1", "-c", "SELECT 1"]);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /Error: /);
    const usage = await runShell(["a", "b"]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /Usage: borealis sql/);
    const flagForm = await runShell(["--url", server.url, "--command", "SELECT 40 + 2 AS answer"]);
    assert.equal(flagForm.code, 0, flagForm.stderr);
    assert.match(flagForm.stdout, /^\s+42$/m);
    const help = await runShell(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: borealis sql/);
  });
});
