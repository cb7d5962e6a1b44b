/**
 * Child process of the SQLite restart measurement (forked by sqlite.ts): builds a WAL of at least N
 * frames since a TRUNCATE checkpoint, with automatic checkpoints off, then kills itself with SIGKILL
 * so that no close() checkpoints it — the state a crashed application leaves behind.
 *
 * argv: <database file> <frames> <budget ms>. Rows carry ~3.9 KB values so that each row is about one page and a
 * frame is written per row: a 1M-frame WAL (4 GiB) takes a thousand commits, not millions.
 */
import { statSync } from "node:fs";
import { openSqlite } from "./sqlite.js";

const [file, framesArg, budgetArg] = process.argv.slice(2);
if (file === undefined || framesArg === undefined || budgetArg === undefined || process.send === undefined) {
  throw new Error("usage: sqlite-restart-child <file> <frames> <budget ms> (as a forked child)");
}
const target = Number(framesArg);
const deadline = performance.now() + Number(budgetArg);
const ROWS_PER_TXN = 250;
const BIG_VALUE_BYTES = 3900;

const db = openSqlite(file);
db.exec("CREATE TABLE IF NOT EXISTS restart_log (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v TEXT NOT NULL)");
db.pragma("wal_autocheckpoint = 0");
// Reuse the pages of the previous measurement instead of growing the file by 4 GiB each time.
db.exec("DELETE FROM restart_log");
db.pragma("wal_checkpoint(TRUNCATE)");
const frameBytes = 4096 + 24;
const frames = (): number => {
  try {
    return Math.floor((statSync(`${file}-wal`).size - 32) / frameBytes);
  } catch {
    return 0;
  }
};
let lastId = Number(db.prepare("SELECT coalesce(max(id), 0) FROM restart_log").pluck().get());
const insert = db.prepare("INSERT INTO restart_log (id, k, v) VALUES (?, ?, ?)");
const txn = db.transaction((first: number, n: number) => {
  for (let id = first; id < first + n; id++) insert.run(id, id % 1000, String(id).padEnd(BIG_VALUE_BYTES, "x"));
});
let rows = 0;
let lastReport = 0;
// Bounded: each pass adds ≥ 1 frame per row; stop at 4× the rows a page-per-row log would need.
const maxRows = target * 4 + 1000;
while (frames() < target && rows < maxRows && performance.now() < deadline) {
  const n = Math.min(ROWS_PER_TXN, Math.max(1, target - frames()));
  txn(lastId + 1, n);
  lastId += n;
  rows += n;
  if (rows - lastReport >= 10_000) {
    lastReport = rows;
    process.send({ progress: frames() });
  }
}
process.send({ rows, lastId }, () => process.kill(process.pid, "SIGKILL"));
