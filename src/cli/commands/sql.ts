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

const description = [
  "Opens an SQL shell on a Borealis endpoint, speaking Hrana over HTTP through @libsql/client as",
  "applications do. With --command (-c), runs the SQL (one or more statements, or a dot command) and",
  "exits; without it, reads SQL from stdin when stdin is not a terminal, else starts an interactive",
  "shell (.help lists its dot commands; history in ~/.borealis_history). Statements run in",
  "autocommit mode; BEGIN … COMMIT runs them on one stream. Exits 1 when a statement fails or the",
  "endpoint cannot be reached. The URL may also be given as the first argument, or in $BOREALIS_URL.",
].join("\n");

/** The flags as the CLI framework (`src/cli/command.ts`) hands them over: given values or defaults. */
export interface SqlFlags {
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
  readonly given: ReadonlySet<string>;
}

/**
 * The `sql` command, shaped as the CLI framework's `Command` (structurally: this file does not import
 * the framework, which is written in parallel). The framework parses `--flags` only; `rewriteArgs`
 * turns the shell's customary `borealis sql URL -c SQL` into `--url URL --command SQL` first.
 */
export const sqlCommand = {
  name: "sql",
  summary: "SQL shell on a Borealis endpoint (Hrana over HTTP)",
  usage: "borealis sql [URL] [-c SQL]   (or: borealis sql [--url URL] [--command SQL])",
  description,
  flags: {
    url: { type: "string", valueName: "URL", default: DEFAULT_URL, description: "the endpoint ($BOREALIS_URL when not given)" },
    command: { type: "string", valueName: "SQL", description: "run this SQL and exit (short form: -c SQL)" },
  },
  examples: [
    "borealis sql",
    "borealis sql http://127.0.0.1:8080 -c \"SELECT * FROM sqlite_schema\"",
    "borealis sql http://127.0.0.1:8080 < schema.sql",
  ],
  rewriteArgs,
  run,
} as const;

/** `URL` → `--url URL`, `-c SQL` → `--command SQL`; everything else unchanged. */
export function rewriteArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  let urlGiven = args.some((a) => a === "--url" || a.startsWith("--url="));
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "-c" || a === "--command" || a === "--url") {
      out.push(a === "-c" ? "--command" : a);
      if (i + 1 < args.length) out.push(args[++i]!);
    } else if (a === "--") {
      out.push(...args.slice(i));
      break;
    } else if (!a.startsWith("-") && !urlGiven) {
      out.push("--url", a);
      urlGiven = true;
    } else {
      out.push(a);
    }
  }
  return out;
}

/**
 * Standalone entry: parses raw arguments (positional URL, -c) itself and runs. For a CLI main that
 * does not call `rewriteArgs`, and for tests.
 */
export async function runSqlCommand(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: rewriteArgs(argv),
      strict: true,
      allowPositionals: false,
      options: { url: { type: "string" }, command: { type: "string" }, help: { type: "boolean", short: "h" } },
    });
  } catch (e) {
    process.stderr.write(`borealis sql: ${describeError(e).split("\n")[0]}\nUsage: ${sqlCommand.usage} (see borealis sql --help)\n`);
    return 2;
  }
  if (parsed.values.help === true) {
    process.stdout.write(`Usage: ${sqlCommand.usage}\n\n${description}\n`);
    return 0;
  }
  const given = new Set(Object.keys(parsed.values).filter((k) => parsed.values[k as keyof typeof parsed.values] !== undefined));
  return run({ values: { url: parsed.values.url ?? DEFAULT_URL, command: parsed.values.command }, given });
}

export async function run(flags: SqlFlags): Promise<number> {
  const url = flags.given.has("url") ? String(flags.values["url"]) : process.env["BOREALIS_URL"] || DEFAULT_URL;
  const command = flags.values["command"];

  let client: Client;
  try {
    // intMode "bigint": the shell prints every 64-bit integer exactly.
    client = createClient({ url, intMode: "bigint" });
  } catch (e) {
    process.stderr.write(`borealis sql: ${describeError(e)}\n`);
    return 2;
  }
  try {
    if (typeof command === "string") return await runScript(client, command);
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
