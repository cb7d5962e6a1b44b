/**
 * The `borealis sql` shell's engine room: feeding lines, recognising complete statements and dot
 * commands, running statements through `@libsql/client` (Hrana over HTTP — the way applications talk
 * to Borealis, so the shell exercises the real endpoint), and printing aligned tables. The command
 * (`src/cli/commands/sql.ts`) owns the terminal: readline, history, arguments, exit codes.
 *
 * Transactions. `@libsql/client` runs every `execute()` on a fresh stream, so a bare `BEGIN` would be
 * rolled back as soon as its stream closed. The shell therefore follows the transaction itself: `BEGIN`
 * opens `client.transaction(mode)` (IMMEDIATE/EXCLUSIVE → "write", DEFERRED or plain → "deferred",
 * `BEGIN TRANSACTION READONLY` → "read"), statements run inside it until `COMMIT`/`END`/`ROLLBACK`.
 * Outside a transaction each statement is its own stream, so per-connection state (`PRAGMA
 * foreign_keys`, temp tables) does not carry from one statement to the next.
 *
 * The server expires a stream idle for 10 s and rolls its transaction back. A person at a prompt is
 * slower than that, so while a transaction is open in an interactive shell, the shell pings it
 * (`SELECT 1`) every few seconds — for at most `keepaliveMaxMs`, so that a forgotten shell does not hold
 * the write lock for ever.
 */
import type { Client, InValue, ResultSet, Transaction, TransactionMode } from "@libsql/client";
import { isComplete, leadingWords, splitStatements } from "./sql-text.js";

export interface ShellOutput {
  out(text: string): void;
  err(text: string): void;
}

export interface ShellOptions {
  /** Interactive shells print "OK" lines and keep transactions alive; scripts print only results. */
  readonly interactive: boolean;
  /** Monotonic milliseconds, for `.timer`. */
  readonly nowMs: () => number;
  readonly keepaliveEveryMs?: number;
  readonly keepaliveMaxMs?: number;
}

export const HELP = `.help                 Show this message
.quit | .exit         Leave the shell (an open transaction is rolled back)
.tables [PATTERN]     List tables and views (LIKE pattern)
.schema [PATTERN]     Show CREATE statements (LIKE pattern on table names)
.timer on|off         Print the time each statement takes

SQL statements end with ";" and may span lines. BEGIN … COMMIT/ROLLBACK run on one stream.`;

type Executor = { execute(stmt: string | { sql: string; args: InValue[] }): Promise<ResultSet> };

/** What a statement does to the shell's transaction state. */
export function classifyStatement(sql: string): { kind: "begin"; mode: TransactionMode } | { kind: "commit" | "rollback" | "other" } {
  const [first, second, third] = leadingWords(sql, 3);
  switch (first) {
    case "BEGIN":
      if (second === "IMMEDIATE" || second === "EXCLUSIVE") return { kind: "begin", mode: "write" };
      if (second === "READONLY" || (second === "TRANSACTION" && third === "READONLY")) return { kind: "begin", mode: "read" };
      return { kind: "begin", mode: "deferred" };
    case "COMMIT":
    case "END":
      return { kind: "commit" };
    case "ROLLBACK":
      // ROLLBACK [TRANSACTION] TO [SAVEPOINT] name rolls back to a savepoint and stays in the transaction.
      if (second === "TO" || third === "TO") return { kind: "other" };
      return { kind: "rollback" };
    default:
      return { kind: "other" };
  }
}

export class Shell {
  private buffer = "";
  private tx: Transaction | undefined;
  private txLost: string | undefined;
  private timer = false;
  private keepalive: ReturnType<typeof setInterval> | undefined;
  private lastActivityMs = 0;
  /** Serialises user statements and keepalive pings. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly client: Client, private readonly io: ShellOutput, private readonly options: ShellOptions) {}

  get inTransaction(): boolean {
    return this.tx !== undefined;
  }

  /** True while a statement is being typed (the prompt should say "…>"). */
  get continuing(): boolean {
    return this.buffer.trim().length > 0;
  }

  /** Drops a half-typed statement (Ctrl-C). */
  clearBuffer(): void {
    this.buffer = "";
  }

  /**
   * Feeds one input line. Returns "quit" for .quit/.exit, otherwise whether everything the line
   * completed succeeded.
   */
  async feedLine(line: string): Promise<boolean | "quit"> {
    if (!this.continuing && line.trimStart().startsWith(".")) {
      this.buffer = "";
      return this.dotCommand(line.trim());
    }
    this.buffer += (this.buffer === "" ? "" : "\n") + line;
    if (!isComplete(this.buffer)) {
      // Nothing but blanks and comments: nothing to wait for.
      if (!splitStatements(this.buffer).restHasContent) this.buffer = "";
      return true;
    }
    const { statements } = splitStatements(this.buffer);
    this.buffer = "";
    return this.runAll(statements);
  }

  /** End of input: runs a final statement that lacks its semicolon (as the sqlite3 shell does). */
  async finish(): Promise<boolean> {
    const { statements, rest, restHasContent } = splitStatements(this.buffer);
    this.buffer = "";
    const all = restHasContent ? [...statements, rest] : statements;
    return this.runAll(all);
  }

  /** Rolls back an open transaction (end of input, .quit) and stops the keepalive. */
  async close(): Promise<void> {
    this.stopKeepalive();
    if (this.tx !== undefined) {
      const tx = this.tx;
      this.tx = undefined;
      this.io.err("Open transaction rolled back.");
      await tx.rollback().catch(() => undefined);
    }
  }

  private async runAll(statements: string[]): Promise<boolean> {
    for (const sql of statements) {
      if (!(await this.runStatement(sql))) return false;
    }
    return true;
  }

  /** Runs one statement and prints its result or error. */
  async runStatement(sql: string): Promise<boolean> {
    return this.serialised(async () => {
      this.lastActivityMs = this.options.nowMs();
      const started = this.options.nowMs();
      try {
        const rs = await this.executeTracked(sql);
        if (rs !== undefined) this.printResult(rs);
        return true;
      } catch (e) {
        this.io.err(`Error: ${describeError(e)}`);
        if (this.tx?.closed) {
          this.tx = undefined;
          this.stopKeepalive();
          this.io.err("The transaction is no longer open (the server rolled it back).");
        }
        return false;
      } finally {
        if (this.timer) this.io.out(`Run Time: ${((this.options.nowMs() - started) / 1000).toFixed(3)} s`);
      }
    });
  }

  private async executeTracked(sql: string): Promise<ResultSet | undefined> {
    if (this.txLost !== undefined && this.tx === undefined) {
      const why = this.txLost;
      this.txLost = undefined;
      this.io.err(`Note: the transaction was rolled back while idle (${why}).`);
    }
    const c = classifyStatement(sql);
    if (c.kind === "begin") {
      if (this.tx !== undefined) return this.tx.execute(sql); // the server says why not
      const tx = await this.client.transaction(c.mode);
      try {
        // The client sends BEGIN with the first statement; send one now so that BEGIN IMMEDIATE takes
        // the write lock (and reports a failure) when the user typed it.
        await tx.execute("SELECT 1");
      } catch (e) {
        tx.close();
        throw e;
      }
      this.tx = tx;
      this.startKeepalive();
      return undefined;
    }
    if (this.tx !== undefined && (c.kind === "commit" || c.kind === "rollback")) {
      const tx = this.tx;
      this.tx = undefined;
      this.stopKeepalive();
      if (c.kind === "commit") await tx.commit();
      else await tx.rollback();
      return undefined;
    }
    return (this.tx ?? this.client).execute(sql);
  }

  // ------------------------------------------------------------------------------------ dot commands

  private async dotCommand(line: string): Promise<boolean | "quit"> {
    const [cmd, ...args] = line.split(/\s+/);
    switch (cmd) {
      case ".quit":
      case ".exit":
        return "quit";
      case ".help":
        this.io.out(HELP);
        return true;
      case ".timer":
        if (args[0] !== "on" && args[0] !== "off") {
          this.io.err("Usage: .timer on|off");
          return false;
        }
        this.timer = args[0] === "on";
        return true;
      case ".tables":
        return this.query(
          "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' AND name LIKE ? ORDER BY name",
          [args[0] ?? "%"],
          (rs) => this.io.out(columns(rs.rows.map((r) => String(r[0])))),
        );
      case ".schema":
        return this.query(
          "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' AND (tbl_name LIKE ? OR name LIKE ?) " +
            "ORDER BY tbl_name, type DESC, name",
          [args[0] ?? "%", args[0] ?? "%"],
          (rs) => { for (const r of rs.rows) this.io.out(`${String(r[0])};`); },
        );
      default:
        this.io.err(`Error: unknown command ${JSON.stringify(cmd)}. Enter ".help" for help.`);
        return false;
    }
  }

  private query(sql: string, args: InValue[], print: (rs: ResultSet) => void): Promise<boolean> {
    return this.serialised(async () => {
      try {
        const target: Executor = this.tx ?? this.client;
        print(await target.execute({ sql, args }));
        return true;
      } catch (e) {
        this.io.err(`Error: ${describeError(e)}`);
        return false;
      }
    });
  }

  // --------------------------------------------------------------------------------------- output

  private printResult(rs: ResultSet): void {
    if (rs.columns.length === 0) {
      if (this.options.interactive) this.io.out(`OK${rs.rowsAffected > 0 ? `, ${rs.rowsAffected} row${rs.rowsAffected === 1 ? "" : "s"} affected` : ""}`);
      return;
    }
    this.io.out(formatTable(rs.columns, rs.rows.map((r) => Array.from({ length: rs.columns.length }, (_, i) => r[i]))));
  }

  // ------------------------------------------------------------------------------------ keepalive

  private startKeepalive(): void {
    if (!this.options.interactive) return;
    const every = this.options.keepaliveEveryMs ?? 4000;
    const max = this.options.keepaliveMaxMs ?? 300_000;
    this.keepalive = setInterval(() => {
      const tx = this.tx;
      if (tx === undefined) return this.stopKeepalive();
      if (this.options.nowMs() - this.lastActivityMs > max) {
        // Let the server expire it: a forgotten shell must not hold the write lock for ever.
        this.stopKeepalive();
        return;
      }
      void this.serialised(() => tx.execute("SELECT 1")).catch((e: unknown) => {
        if (this.tx === tx) {
          this.tx = undefined;
          this.txLost = describeError(e);
          this.stopKeepalive();
        }
      });
    }, every);
    this.keepalive.unref();
  }

  private stopKeepalive(): void {
    if (this.keepalive !== undefined) clearInterval(this.keepalive);
    this.keepalive = undefined;
  }

  private serialised<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn, fn);
    this.chain = p.catch(() => undefined);
    return p;
  }
}

// ------------------------------------------------------------------------------------------ format

const MAX_CELL_CHARS = 200;
const MAX_BLOB_BYTES = 32;

/** A value as the shell prints it: NULL, integers exactly, floats with a decimal point, blobs as X'…'. */
export function formatValue(v: unknown): string {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "number") {
    if (v === Infinity) return "Inf";
    if (v === -Infinity) return "-Inf";
    // A float that happens to be integral still reads as a float, as in the sqlite3 shell: 2.0.
    return Number.isInteger(v) && Math.abs(v) < 1e15 ? v.toFixed(1) : String(v);
  }
  if (v instanceof ArrayBuffer || v instanceof Uint8Array) {
    const bytes = v instanceof Uint8Array ? v : new Uint8Array(v);
    const hex = Buffer.from(bytes.subarray(0, MAX_BLOB_BYTES)).toString("hex").toUpperCase();
    return bytes.length > MAX_BLOB_BYTES ? `X'${hex}…' (${bytes.length} bytes)` : `X'${hex}'`;
  }
  const s = String(v).replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)
    .replace(/\n/g, "\\n").replace(/\t/g, "\\t");
  return s.length > MAX_CELL_CHARS ? s.slice(0, MAX_CELL_CHARS - 1) + "…" : s;
}

/** An aligned table: numbers right-aligned, a rule under the header, a row count. */
export function formatTable(columns: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const cells = rows.map((r) => r.map(formatValue));
  const numeric = columns.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === "bigint" || typeof r[i] === "number" || r[i] === null));
  const widths = columns.map((c, i) => Math.max(width(c), ...cells.map((r) => width(r[i] ?? ""))));
  const pad = (s: string, i: number) => {
    const gap = " ".repeat(widths[i]! - width(s));
    return numeric[i] ? gap + s : s + gap;
  };
  const lines = [
    columns.map((c, i) => ` ${c}${" ".repeat(widths[i]! - width(c))} `).join("|"),
    widths.map((w) => "-".repeat(w + 2)).join("+"),
    ...cells.map((r) => r.map((s, i) => ` ${pad(s, i)} `).join("|")),
    `(${rows.length} row${rows.length === 1 ? "" : "s"})`,
  ];
  return lines.map((l) => l.trimEnd()).join("\n");
}

/** Names laid out in columns, like the sqlite3 shell's `.tables`. */
function columns(names: string[], lineWidth = 80): string {
  if (names.length === 0) return "";
  const w = Math.max(...names.map(width)) + 2;
  const perLine = Math.max(1, Math.floor(lineWidth / w));
  const lines: string[] = [];
  for (let i = 0; i < names.length; i += perLine) {
    lines.push(names.slice(i, i + perLine).map((n) => n + " ".repeat(w - width(n))).join("").trimEnd());
  }
  return lines.join("\n");
}

/** Display width in code points (good enough for a terminal table; wide CJK glyphs count as one). */
function width(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** An error for a person: the client's message (it already starts with the code), and its cause. */
export function describeError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  let text = e.message;
  let cause = (e as { cause?: unknown }).cause;
  for (let depth = 0; depth < 3 && cause instanceof Error; depth++) {
    if (!text.includes(cause.message)) text += ` (${cause.message})`;
    cause = (cause as { cause?: unknown }).cause;
  }
  return text;
}
