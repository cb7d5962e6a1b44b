/**
 * The shell's statement-completeness rule (SQLite's sqlite3_complete), splitting, transaction
 * classification and table formatting.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { isComplete, leadingWords, splitStatements } from "../../src/endpoint/sql-text.js";
import { classifyStatement, formatTable, formatValue } from "../../src/endpoint/shell.js";

test("a statement is complete at a semicolon outside strings, names and comments", () => {
  const complete = [
    "SELECT 1;",
    "SELECT 1;  ",
    "SELECT 1; -- trailing comment",
    "SELECT 1; /* block */",
    "SELECT\n  1\n;",
    "SELECT 'a;b';",
    "SELECT 'it''s';",
    'SELECT "a;b" FROM t;',
    "SELECT [a;b] FROM t;",
    "SELECT `a;b` FROM t;",
    "SELECT 1 -- no; not here\n;",
    "SELECT 1 /* ; */;",
    ";",
    "SELECT 1; SELECT 2;",
    "CREATE TABLE t (a); CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 1; DELETE FROM t; END;",
    "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;",
    "EXPLAIN QUERY PLAN CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;",
    "CREATE TABLE trigger_log (end INTEGER);",
  ];
  for (const sql of complete) assert.equal(isComplete(sql), true, sql);

  const incomplete = [
    "",
    "   ",
    "-- only a comment",
    "SELECT 1",
    "SELECT 'a;",
    'SELECT "a;',
    "SELECT [a;",
    "SELECT 1 /* ; ",
    "SELECT 1 -- ;",
    "SELECT 1; SELECT 2",
    "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 1;",
    "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 1; END",
    "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 'END;';",
  ];
  for (const sql of incomplete) assert.equal(isComplete(sql), false, sql);
});

test("scripts split into statements, keeping triggers whole and dropping blanks", () => {
  const trigger = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET a = 1;\n  DELETE FROM u;\nEND;";
  const r = splitStatements(`CREATE TABLE t (a);\n;;\n-- note\n${trigger}\nINSERT INTO t VALUES ('x;y'); SELECT 1`);
  assert.deepEqual(r.statements, ["CREATE TABLE t (a);", `-- note\n${trigger}`, "INSERT INTO t VALUES ('x;y');"]);
  assert.equal(r.rest, "SELECT 1");
  assert.equal(r.restHasContent, true);

  const blank = splitStatements("SELECT 1;\n-- just a comment\n");
  assert.deepEqual(blank.statements, ["SELECT 1;"]);
  assert.equal(blank.restHasContent, false);

  const open = splitStatements("SELECT 1; SELECT 'unterminated");
  assert.deepEqual(open.statements, ["SELECT 1;"]);
  assert.equal(open.rest, "SELECT 'unterminated");
  assert.equal(open.restHasContent, true);
});

test("leading words skip comments; BEGIN/COMMIT/ROLLBACK are classified for the shell's transactions", () => {
  assert.deepEqual(leadingWords("  -- c\n /* d */ begin immediate;", 3), ["BEGIN", "IMMEDIATE"]);
  assert.deepEqual(classifyStatement("BEGIN"), { kind: "begin", mode: "deferred" });
  assert.deepEqual(classifyStatement("begin transaction;"), { kind: "begin", mode: "deferred" });
  assert.deepEqual(classifyStatement("BEGIN DEFERRED"), { kind: "begin", mode: "deferred" });
  assert.deepEqual(classifyStatement("BEGIN IMMEDIATE;"), { kind: "begin", mode: "write" });
  assert.deepEqual(classifyStatement("BEGIN EXCLUSIVE TRANSACTION"), { kind: "begin", mode: "write" });
  assert.deepEqual(classifyStatement("BEGIN TRANSACTION READONLY"), { kind: "begin", mode: "read" });
  assert.deepEqual(classifyStatement("COMMIT;"), { kind: "commit" });
  assert.deepEqual(classifyStatement("END TRANSACTION"), { kind: "commit" });
  assert.deepEqual(classifyStatement("ROLLBACK"), { kind: "rollback" });
  assert.deepEqual(classifyStatement("ROLLBACK TO sp1"), { kind: "other" });
  assert.deepEqual(classifyStatement("ROLLBACK TRANSACTION TO SAVEPOINT sp1"), { kind: "other" });
  assert.deepEqual(classifyStatement("SELECT 'BEGIN'"), { kind: "other" });
});

test("tables are aligned, numbers right-aligned, values printed exactly", () => {
  const table = formatTable(["id", "name", "score"], [
    [1n, "alice", 2.5],
    [9223372036854775807n, null, 3],
  ]);
  assert.equal(table, [
    " id                  | name  | score",
    "---------------------+-------+-------",
    "                   1 | alice |   2.5",
    " 9223372036854775807 | NULL  |   3.0",
    "(2 rows)",
  ].join("\n"));
  assert.equal(formatTable(["x"], []), " x\n---\n(0 rows)");
  assert.equal(formatValue(new Uint8Array([0xde, 0xad]).buffer), "X'DEAD'");
  assert.equal(formatValue("a\nb\u0001"), "a\\nb\\x01");
  assert.equal(formatValue(-Infinity), "-Inf");
});
