/**
 * `npm run sim -- …`: the deterministic simulator's command line.
 *
 *   --seed N        run one seed; prints its trace hash (a replay prints the same one)
 *   --seeds K       run K seeds from the base seed (a swarm), with progress and a summary
 *   --base B        first seed of a swarm (default 1)
 *   --steps S       nemesis steps per run (default 60)
 *   --mode M        force calm | tolerant | beyond instead of drawing it from the seed
 *   --faults K,K    only these fault kinds (see nemesis.ts FAULT_KINDS), e.g. --faults crash,orphan-records
 *   --verbose       print the trace as it is written (with --seed)
 *
 * Exit status 1 if any run failed; every failure prints its seed and the command that replays it.
 */
import { runSimulation, type SimResult } from "./run.js";
import { FAULT_KINDS, type FaultKind, type NemesisMode } from "./nemesis.js";

interface Args {
  seed?: number;
  seeds?: number;
  base: number;
  steps: number;
  mode?: NemesisMode;
  faults?: FaultKind[];
  verbose: boolean;
}

function usage(message?: string): never {
  if (message !== undefined) process.stderr.write(`sim: ${message}\n`);
  process.stderr.write("usage: npm run sim -- [--seed N | --seeds K [--base B]] [--steps S] [--mode calm|tolerant|beyond] [--faults K,K] [--verbose]\n");
  process.exit(2);
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { base: 1, steps: 60, verbose: false };
  const int = (v: string | undefined, what: string): number => {
    const n = Number(v);
    if (v === undefined || !Number.isSafeInteger(n) || n < 0) usage(`${what} needs a non-negative integer`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    switch (a) {
      case "--seed": args.seed = int(argv[++i], a); break;
      case "--seeds": args.seeds = int(argv[++i], a); break;
      case "--base": args.base = int(argv[++i], a); break;
      case "--steps": args.steps = int(argv[++i], a); break;
      case "--mode": {
        const m = argv[++i];
        if (m !== "calm" && m !== "tolerant" && m !== "beyond") usage("--mode is calm, tolerant or beyond");
        args.mode = m;
        break;
      }
      case "--faults": {
        const list = (argv[++i] ?? "").split(",").filter((x) => x.length > 0);
        for (const k of list) if (!(FAULT_KINDS as readonly string[]).includes(k)) usage(`unknown fault kind ${k}; kinds: ${FAULT_KINDS.join(", ")}`);
        args.faults = list as FaultKind[];
        break;
      }
      case "--verbose": args.verbose = true; break;
      case "--help": case "-h": usage();
      default: usage(`unknown argument ${a}`);
    }
  }
  if (args.seed !== undefined && args.seeds !== undefined) usage("--seed and --seeds exclude each other");
  return args;
}

export function replayCommand(r: { seed: number }, args: { steps: number; mode?: NemesisMode; faults?: readonly FaultKind[] }): string {
  return `npm run sim -- --seed ${r.seed}${args.steps !== 60 ? ` --steps ${args.steps}` : ""}${args.mode !== undefined ? ` --mode ${args.mode}` : ""}` +
    `${args.faults !== undefined ? ` --faults ${args.faults.join(",")}` : ""}`;
}

export function describe(r: SimResult): string {
  const st = r.stats;
  const faults = Object.entries(st.faults).map(([k, v]) => `${k}:${v}`).join(",");
  return `seed ${r.seed} ${r.ok ? "ok" : "FAILED"} hash ${r.traceHash} mode ${r.mode} mtrs ${st.mtrs} acked ${st.acked} ` +
    `unknown ${st.unknown} reads ${st.reads} recoveries ${st.recoveries} writers ${st.writers} vdl ${st.finalVdl} ` +
    `final ${st.finalReads}/${st.finalSegmentReads}/${st.finalRecordsChecked} faults [${faults}] ` +
    `${(r.virtualMs / 1000).toFixed(1)}s virtual, ${r.events} events, ${r.wallMs} ms`;
}

function printFailure(r: SimResult, args: Args): void {
  for (const f of r.failures.slice(0, 5)) process.stdout.write(`  ${f.kind} at ${f.atMs.toFixed(3)} ms: ${f.message}\n`);
  process.stdout.write("  last trace lines:\n");
  for (const line of r.traceTail.slice(-25)) process.stdout.write(`    ${line.length > 400 ? line.slice(0, 400) + "…" : line}\n`);
  process.stdout.write(`  replay: ${replayCommand(r, args)}\n`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.seeds === undefined) {
    const seed = args.seed ?? args.base;
    const r = await runSimulation({ seed, steps: args.steps, verbose: args.verbose, ...(args.mode !== undefined ? { mode: args.mode } : {}), ...(args.faults !== undefined ? { faults: args.faults } : {}) });
    process.stdout.write(describe(r) + "\n");
    if (!r.ok) printFailure(r, args);
    process.exitCode = r.ok ? 0 : 1;
    return;
  }
  const failed: SimResult[] = [];
  const t0 = performance.now();
  let acked = 0, mtrs = 0, recoveries = 0;
  const modes: Record<string, number> = {};
  for (let i = 0; i < args.seeds; i++) {
    const seed = args.base + i;
    const r = await runSimulation({ seed, steps: args.steps, ...(args.mode !== undefined ? { mode: args.mode } : {}), ...(args.faults !== undefined ? { faults: args.faults } : {}) });
    acked += r.stats.acked;
    mtrs += r.stats.mtrs;
    recoveries += r.stats.recoveries;
    modes[r.mode] = (modes[r.mode] ?? 0) + 1;
    process.stdout.write(`[${i + 1}/${args.seeds}] ${describe(r)}\n`);
    if (!r.ok) {
      failed.push(r);
      printFailure(r, args);
    }
  }
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  process.stdout.write(`\n${args.seeds} seeds (${args.base}..${args.base + args.seeds - 1}) in ${secs} s: ${args.seeds - failed.length} passed, ${failed.length} failed; ` +
    `modes ${JSON.stringify(modes)}; ${mtrs} commits submitted, ${acked} acknowledged, ${recoveries} recoveries\n`);
  if (failed.length > 0) {
    process.stdout.write(`failing seeds: ${failed.map((r) => r.seed).join(" ")}\n`);
    for (const r of failed) process.stdout.write(`  ${replayCommand(r, args)}   # ${r.failures[0]?.kind}: ${r.failures[0]?.message.slice(0, 160)}\n`);
  }
  process.exitCode = failed.length > 0 ? 1 : 0;
}

await main();
