/**
 * The CLI's small framework: how a subcommand declares its flags, how they are parsed (node:util
 * parseArgs in strict mode, so an unknown or misspelled flag is an error, never silently ignored), how
 * help is printed, and which exit code each kind of failure gets:
 *
 *   0  success (and every `--help`)
 *   1  an operating error: the command was well formed but could not do its job (a port is taken, the
 *      control plane is unreachable …); one clear line, a stack trace only with BOREALIS_DEBUG=1
 *   2  a usage error: unknown flag, missing flag, malformed value; one line and "see borealis CMD --help"
 *
 * Defaults are applied here, not by parseArgs, so that a command can tell a flag the user gave from
 * one it defaulted (`given`).
 */
import { parseArgs } from "node:util";

export interface FlagSpec {
  readonly type: "string" | "boolean";
  /** Placeholder in help: `--data DIR`. */
  readonly valueName?: string;
  /** The default, as shown in help and applied when the flag is absent. */
  readonly default?: string | boolean;
  /** For help only: what happens when an optional flag without a `default` is absent. */
  readonly defaultText?: string;
  readonly required?: boolean;
  readonly description: string;
}

export interface ParsedFlags {
  /** Every declared flag: the given value, else its default, else undefined. */
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
  /** Flags present on the command line. */
  readonly given: ReadonlySet<string>;
}

export interface Command {
  readonly name: string;
  /** One line, for `borealis --help`. */
  readonly summary: string;
  /** The synopsis line after "Usage:". */
  readonly usage: string;
  /** Paragraphs explaining what the command does. */
  readonly description: string;
  readonly flags: Readonly<Record<string, FlagSpec>>;
  readonly examples: readonly string[];
  /**
   * Turns a command's customary short forms into declared flags before strict parsing, e.g. `borealis
   * sql URL -c SQL` → `--url URL --command SQL`. Most commands have none.
   */
  rewriteArgs?(args: readonly string[]): string[];
  /** Resolves with the exit code. Throw UsageError for bad flag values, anything else for operating errors. */
  run(flags: ParsedFlags): Promise<number>;
}

/** A malformed command line: exit 2 with a hint to read the help. */
export class UsageError extends Error {
  override name = "UsageError";
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export function out(line = ""): void {
  process.stdout.write(line + "\n");
}

export function err(line: string): void {
  process.stderr.write(line + "\n");
}

// --------------------------------------------------------------------------------------------- help

export function commandHelp(c: Command): string {
  const rows: [string, string][] = Object.entries(c.flags).map(([name, f]) => {
    const left = `--${name}${f.type === "string" ? ` ${f.valueName ?? "VALUE"}` : ""}`;
    const dflt = f.required ? "required"
      : f.default !== undefined ? `default: ${String(f.default)}`
      : f.defaultText !== undefined ? `default: ${f.defaultText}`
      : f.type === "boolean" ? "default: off" : "optional";
    return [left, `${f.description} (${dflt})`];
  });
  rows.push(["-h, --help", "print this help and exit"]);
  const width = Math.max(...rows.map(([l]) => l.length));
  const lines = [
    `Usage: ${c.usage}`,
    "",
    ...c.description.split("\n").map((l) => (l.length > 0 ? `  ${l}` : "")),
    "",
    "Flags:",
    ...rows.map(([l, r]) => `  ${l.padEnd(width)}  ${r}`),
  ];
  if (c.examples.length > 0) lines.push("", "Examples:", ...c.examples.map((e) => `  ${e}`));
  return lines.join("\n");
}

// ------------------------------------------------------------------------------------------ parsing

/** Parses `args` for `c`; throws UsageError with a one-line message. Returns null for `--help`. */
export function parseFlags(c: Command, args: readonly string[]): ParsedFlags | null {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = { help: { type: "boolean", short: "h" } };
  for (const [name, f] of Object.entries(c.flags)) options[name] = { type: f.type };
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options, strict: true, allowPositionals: false });
  } catch (e) {
    throw new UsageError(describeParseError(e));
  }
  const raw = parsed.values as Record<string, string | boolean | undefined>;
  if (raw["help"] === true) return null;
  const values: Record<string, string | boolean | undefined> = {};
  const given = new Set<string>();
  for (const [name, f] of Object.entries(c.flags)) {
    const v = raw[name];
    if (v !== undefined) {
      given.add(name);
      if (typeof v === "string" && v.length === 0) throw new UsageError(`--${name} needs a value`);
      values[name] = v;
    } else if (f.required) {
      throw new UsageError(`missing required flag --${name}${f.valueName ? ` ${f.valueName}` : ""}`);
    } else {
      values[name] = f.default;
    }
  }
  return { values, given };
}

function describeParseError(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  const message = e instanceof Error ? e.message : String(e);
  const quoted = /'([^']+)'/.exec(message)?.[1];
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown flag ${quoted ?? message}`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      // "Option '--data <value>' argument missing" or "Option '--json' does not take an argument"
      return /argument missing/.test(message)
        ? `${(quoted ?? "flag").replace(/ <value>$/, "")} needs a value`
        : `${(quoted ?? "flag").replace(/ <value>$/, "")} takes no value`;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `unexpected argument ${quoted !== undefined ? `"${quoted}"` : ""}`.trim();
    default:
      return message.split("\n")[0]!;
  }
}

// ------------------------------------------------------------------------------------- flag values

export function stringFlag(flags: ParsedFlags, name: string): string {
  const v = flags.values[name];
  if (typeof v !== "string") throw new UsageError(`missing --${name}`);
  return v;
}

export function optionalStringFlag(flags: ParsedFlags, name: string): string | undefined {
  const v = flags.values[name];
  return typeof v === "string" ? v : undefined;
}

export function intFlag(flags: ParsedFlags, name: string, min: number, max: number): number {
  const text = stringFlag(flags, name);
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer in [${min}, ${max}]; got "${text}"`);
  }
  return n;
}

/** Runs `convert` on a flag's value; its error message becomes a usage error naming the flag. */
export function convertFlag<T>(flags: ParsedFlags, name: string, convert: (text: string) => T): T {
  const text = stringFlag(flags, name);
  try {
    return convert(text);
  } catch (e) {
    throw new UsageError(`invalid --${name}: ${e instanceof Error ? e.message : String(e)}`);
  }
}
