/**
 * `borealis sql [URL]` — an SQL shell that speaks Hrana over HTTP through `@libsql/client`, exactly as
 * applications do (DESIGN.md, "Client interface").
 *
 *   borealis sql                       interactive, http://127.0.0.1:8080 (or $BOREALIS_URL)
 *   borealis sql URL -c "SQL; SQL"     runs the statements, prints results, exits 1 on the first error
 *   borealis sql URL < script.sql      same for SQL read from stdin when it is not a terminal
 *
 * Interactive mode: statements end with ";" and may span lines (SQLite's completeness rule,
 * `src/endpoint/sql-text.ts`), dot commands (.help, .tables, .schema, .timer, .quit), history in
 * ~/.borealis_history (last 1000 lines). The statement logic is in `src/endpoint/shell.ts`; this file
 * owns the terminal, arguments and exit codes (0 ok, 1 an SQL or connection error, 2 usage).
 */
import { createClient, type Client } from "@libsql/client";
import { readFile, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import * as readline from "node:readline";
import { parseArgs } from "node:util";
import { describeError, Shell } from "../../endpoint/shell.js";

const DEFAULT_URL = "http://127.0.0.1:8080";
const HISTORY_FILE = ".borealis_history";
const HISTORY_LINES = 1000;
/** Bound on SQL read from stdin: a script, not a dump pipe of unbounded size. */
const MAX_STDIN_BYTES = 256 * 1024 * 1024;

const usage = `Usage: borealis sql [URL] [-c SQL]

Opens an SQL shell on a Borealis endpoint (Hrana over HTTP).

Arguments:
  URL               endpoint URL (default: $BOREALIS_URL or ${DEFAULT_URL})

Options:
  -c, --command SQL run SQL (one or more statements, or a dot command) and exit;
                    the exit status is 1 if a statement fails
  -h, --help        show this help

Without -c, SQL is read from stdin when it is not a terminal, else an interactive shell starts.
Statements run in autocommit mode; BEGIN … COMMIT runs them on one stream.`;

export const sqlCommand = {
  name: "sql",
  summary: "SQL shell on a Borealis endpoint (Hrana over HTTP)",
  usage,
  run,
};

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { command: { type: "string", short: "c" }, help: { type: "boolean", short: "h" } },
    });
  } catch (e) {
    process.stderr.write(`borealis sql: ${describeError(e)}\n\n${usage}\n`);
    return 2;
  }
  if (parsed.values.help) {
    process.stdout.write(usage + "\n");
    return 0;
  }
  if (parsed.positionals.length > 1) {
    process.stderr.write(`borealis sql: expected at most one URL, got ${parsed.positionals.length} arguments\n\n${usage}\n`);
    return 2;
  }
  const url = parsed.positionals[0] ?? process.env["BOREALIS_URL"] ?? DEFAULT_URL;

  let client: Client;
  try {
    // intMode "bigint": the shell prints every 64-bit integer exactly.
    client = createClient({ url, intMode: "bigint" });
  } catch (e) {
    process.stderr.write(`borealis sql: ${describeError(e)}\n`);
    return 2;
  }
  try {
    if (parsed.values.command !== undefined) return await runScript(client, parsed.values.command);
    if (!process.stdin.isTTY) return await runScript(client, await readStdin());
    return await interactive(client, url);
  } finally {
    client.close();
  }
}

const io = {
  out: (text: string) => { if (text !== "") process.stdout.write(text + "\n"); },
  err: (text: string) => { process.stderr.write(text + "\n"); },
};

const nowMs = () => performance.now();

/** Runs a script (from -c or stdin) line by line, stopping at the first failure. */
async function runScript(client: Client, text: string): Promise<number> {
  const shell = new Shell(client, io, { interactive: false, nowMs });
  try {
    for (const line of text.split(/\r?\n/)) {
      const r = await shell.feedLine(line);
      if (r === "quit") return 0;
      if (!r) return 1;
    }
    return (await shell.finish()) ? 0 : 1;
  } finally {
    await shell.close();
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > MAX_STDIN_BYTES) throw new Error(`stdin holds more than ${MAX_STDIN_BYTES} bytes of SQL`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString("utf8");
}

async function interactive(client: Client, url: string): Promise<number> {
  const shell = new Shell(client, io, { interactive: true, nowMs });
  try {
    await client.execute("SELECT 1");
  } catch (e) {
    process.stderr.write(`borealis sql: cannot reach ${url}: ${describeError(e)}\n`);
    return 1;
  }
  process.stdout.write(`Connected to ${url}. Enter ".help" for usage hints.\n`);

  const historyPath = join(homedir(), HISTORY_FILE);
  const rl = readline.createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: true,
    history: await loadHistory(historyPath),
    historySize: HISTORY_LINES,
    removeHistoryDuplicates: true,
  });
  rl.on("history", (lines: string[]) => {
    // Most recent first in memory, oldest first on disk. Best effort: history is a convenience.
    void writeFile(historyPath, [...lines].reverse().join("\n") + "\n", { mode: 0o600 }).catch(() => undefined);
  });
  const prompt = () => {
    rl.setPrompt(shell.continuing ? "    ...> " : shell.inTransaction ? "borealis*> " : "borealis> ");
    rl.prompt();
  };
  rl.on("SIGINT", () => {
    // Ctrl-C drops a half-typed statement; on an empty line it leaves.
    if (shell.continuing) {
      shell.clearBuffer();
      process.stdout.write("\n");
      prompt();
    } else {
      rl.close();
    }
  });

  prompt();
  try {
    for await (const line of rl) {
      if ((await shell.feedLine(line)) === "quit") break;
      prompt();
    }
    await shell.finish();
  } finally {
    rl.close();
    await shell.close();
  }
  return 0;
}

async function loadHistory(path: string): Promise<string[]> {
  try {
    const lines = (await readFile(path, "utf8")).split("\n").filter((l) => l.length > 0);
    return lines.slice(-HISTORY_LINES).reverse();
  } catch {
    return [];
  }
}
