#!/usr/bin/env node
/**
 * `borealis`: the command line. Dispatches to one subcommand per file in `commands/`, prints help, and
 * turns failures into exit codes (see command.ts): 0 ok, 1 operating error, 2 usage error.
 */
import { AssertionError } from "../core/assert.js";
import { isBorealisError } from "../core/errors.js";
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, commandHelp, err, out, parseFlags } from "./command.js";
import { COMMANDS } from "./commands/index.js";

function topHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "Usage: borealis COMMAND [FLAGS]",
    "",
    "  Borealis: a cloud-native SQL database built the way Amazon Aurora is built — the log is the database.",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    `  ${"help".padEnd(width)}  print help for a command: borealis help COMMAND`,
    "",
    "Flags:",
    "  -h, --help  print this help and exit",
    "",
    "Run `borealis COMMAND --help` for a command's flags. Exit codes: 0 ok, 1 failed, 2 bad command line.",
    "Set BOREALIS_DEBUG=1 to print stack traces with errors, BOREALIS_LOG=debug for more log lines.",
  ].join("\n");
}

function usageFailure(message: string, command?: string): number {
  err(`borealis${command ? ` ${command}` : ""}: ${message}`);
  err(`see borealis ${command ? `${command} ` : ""}--help`);
  return EXIT_USAGE;
}

async function main(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === "--help" || first === "-h" || (first === "help" && rest.length === 0)) {
    out(topHelp());
    return EXIT_OK;
  }
  if (first === "help") {
    const c = COMMANDS.find((x) => x.name === rest[0]);
    if (c === undefined || rest.length > 1) return usageFailure(`unknown command "${rest.join(" ")}"`);
    out(commandHelp(c));
    return EXIT_OK;
  }
  const command = COMMANDS.find((c) => c.name === first);
  if (command === undefined) {
    return usageFailure(first.startsWith("-") ? `unknown flag ${first} (flags go after the command)` : `unknown command "${first}"`);
  }
  try {
    const flags = parseFlags(command, command.rewriteArgs?.(rest) ?? rest);
    if (flags === null) {
      out(commandHelp(command));
      return EXIT_OK;
    }
    return await command.run(flags);
  } catch (e) {
    if (e instanceof UsageError) return usageFailure(e.message, command.name);
    const message = e instanceof Error ? e.message : String(e);
    // A broken assertion is a bug, not an operating error: say so, so it gets reported.
    const prefix = e instanceof AssertionError ? "internal error (a bug; please report it): " : "";
    err(`borealis ${command.name}: ${prefix}${message}`);
    if (process.env["BOREALIS_DEBUG"] === "1" && e instanceof Error) err(e.stack ?? "");
    else if (isBorealisError(e, "CONNECTION_CLOSED") && command.name === "status") err("is the cluster running? start it with `borealis up`");
    return EXIT_FAILURE;
  }
}

// Exit explicitly: a finished command must not be kept alive by an idle keep-alive socket or a timer.
// (stdout and stderr writes are synchronous for files, pipes and terminals on Linux, so nothing is lost.)
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    err(`borealis: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(EXIT_FAILURE);
  },
);
