/**
 * `npm run faults`: real processes, real faults, consistency checkers (test plan §7 of
 * ../shared/reference/reliability.md; docs/fault-matrix.md says what runs and what it found).
 *
 *   node dist/src/faults/main.js [--workload bank|list-append|register|all] [--nemesis LIST|all|none]
 *       [--duration S] [--seed N] [--concurrency N] [--timeout-ms MS] [--quick] [--matrix] [--out DIR]
 *
 * --nemesis takes a comma-separated list of kill, pause, writer, writer-pause, corrupt, partition,
 * toxics (within tolerance; "all", the default, mixes them in one run) and az-plus-one,
 * isolate-writer (beyond tolerance for writes; "beyond" selects both). --matrix runs every fault alone (and none) against
 * every chosen workload, one cluster per cell, and writes matrix.md. Results go to
 * faults-results/<timestamp>/<run>/ (history JSON in elle-cli's format, checker output, nemesis log,
 * process logs). Exits 1 if any run found an anomaly or failed a check.
 */
import { mkdir, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { BEYOND_TOLERANCE_KINDS, FAULT_KINDS, type FaultKind } from "./nemesis.js";
import { runOne, WORKLOADS, type RunResult, type WorkloadName } from "./runner.js";

interface Args {
  workloads: WorkloadName[];
  faults: FaultKind[];
  durationS: number;
  seed: number;
  concurrency: number;
  timeoutMs: number;
  quick: boolean;
  matrix: boolean;
  out: string;
}

function parseArgs(argv: readonly string[]): Args {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
    const [k, inline] = a.slice(2).split("=", 2) as [string, string | undefined];
    if (k === "quick" || k === "matrix" || k === "help") flags.set(k, true);
    else {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`--${k} needs a value`);
      flags.set(k, v);
    }
  }
  if (flags.has("help")) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  const known = new Set(["workload", "nemesis", "duration", "seed", "concurrency", "timeout-ms", "quick", "matrix", "out"]);
  for (const k of flags.keys()) if (!known.has(k)) throw new Error(`unknown flag --${k}`);
  const str = (k: string): string | undefined => (typeof flags.get(k) === "string" ? flags.get(k) as string : undefined);
  const num = (k: string, d: number, min: number, max: number): number => {
    const v = str(k);
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${k} must be an integer in [${min}, ${max}]`);
    return n;
  };
  const quick = flags.get("quick") === true;
  const w = str("workload") ?? "all";
  const workloads = w === "all" ? [...WORKLOADS] : w.split(",").map((x) => {
    if (!(WORKLOADS as readonly string[]).includes(x)) throw new Error(`unknown workload ${x} (${WORKLOADS.join(", ")}, all)`);
    return x as WorkloadName;
  });
  const n = str("nemesis") ?? "all";
  const allKinds: readonly string[] = [...FAULT_KINDS, ...BEYOND_TOLERANCE_KINDS];
  const faults: FaultKind[] = n === "all" ? [...FAULT_KINDS] : n === "beyond" ? [...BEYOND_TOLERANCE_KINDS] : n === "none" ? [] : n.split(",").map((x) => {
    if (!allKinds.includes(x)) throw new Error(`unknown fault ${x} (${allKinds.join(", ")}, all, beyond, none)`);
    return x as FaultKind;
  });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  return {
    workloads, faults, quick,
    matrix: flags.get("matrix") === true,
    durationS: num("duration", quick ? 15 : 60, 1, 24 * 3600),
    seed: num("seed", Date.now() % 1_000_000, 0, 2 ** 31),
    concurrency: num("concurrency", 5, 1, 64),
    timeoutMs: num("timeout-ms", 5000, 100, 600_000),
    out: str("out") ?? path.join("faults-results", stamp),
  };
}

const usage = `usage: npm run faults -- [--workload bank|list-append|register|all] [--nemesis LIST|all|beyond|none]
                       [--duration S] [--seed N] [--concurrency N] [--timeout-ms MS] [--quick] [--matrix] [--out DIR]
  faults within tolerance (all): ${FAULT_KINDS.join(", ")}
  beyond tolerance (beyond):     ${BEYOND_TOLERANCE_KINDS.join(", ")}`;

function line(r: RunResult): string {
  const ops = Object.entries(r.ops).map(([f, c]) => `${f} ${c.ok}/${c.fail}/${c.info}`).join(", ");
  const verdict = r.valid ? "PASS" : "FAIL";
  const why = r.valid ? "" : ` — ${[
    ...r.checker.anomalyTypes.map((t) => `anomaly ${t}`),
    ...(r.integrityCheck !== "ok" ? [`integrity_check: ${r.integrityCheck}`] : []),
    ...(!r.finalReadsOk ? ["final reads did not succeed"] : []),
    ...r.nemesis.problems.map((p) => `${p.kind}: ${p.message}`),
    ...(r.error !== undefined ? [`error: ${r.error}`] : []),
  ].join("; ")}`;
  const corrupt = r.nemesis.corruptions.length > 0
    ? `, corruptions detected ${r.nemesis.corruptions.filter((c) => c.detected).length}/${r.nemesis.corruptions.length}` : "";
  const restarts = r.nemesis.writerRestartsMs.length > 0 ? `, writer restarts ${r.nemesis.writerRestartsMs.join("/")} ms` : "";
  return `${verdict} ${r.name} seed ${r.seed}, ${(r.elapsedMs / 1000).toFixed(0)} s: ops (ok/fail/info) ${ops}; ` +
    `${r.nemesis.episodes} episodes${corrupt}${restarts}; segments ${r.segmentsConverged.converged ? "converged" : "NOT converged"}${why}`;
}

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${usage}\n`);
    return 2;
  }
  await mkdir(args.out, { recursive: true });
  const log = (l: string): void => {
    process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${l}\n`);
  };
  const cells: { workload: WorkloadName; faults: FaultKind[] }[] = [];
  if (args.matrix) {
    for (const f of [null, ...args.faults]) for (const w of args.workloads) cells.push({ workload: w, faults: f === null ? [] : [f] });
  } else {
    for (const w of args.workloads) cells.push({ workload: w, faults: args.faults });
  }
  log(`${cells.length} run(s), ${args.durationS} s each, seed ${args.seed}, results in ${args.out}`);
  const results: RunResult[] = [];
  for (const [i, cell] of cells.entries()) {
    const dir = path.join(args.out, `${String(i + 1).padStart(2, "0")}-${cell.workload}-${cell.faults.length === 0 ? "none" : cell.faults.join("+")}`);
    const r = await runOne({
      workload: cell.workload, faults: cell.faults, durationS: args.durationS, seed: args.seed + i,
      concurrency: args.concurrency, opTimeoutMs: args.timeoutMs, dir, quick: args.quick, log,
    });
    results.push(r);
    log(line(r));
  }
  await writeFile(path.join(args.out, "summary.json"), JSON.stringify(results, null, 2));
  if (args.matrix) await writeFile(path.join(args.out, "matrix.md"), matrixMarkdown(results));
  process.stdout.write(`\nSummary (${args.out}):\n${results.map((r) => `  ${line(r)}`).join("\n")}\n`);
  const failed = results.filter((r) => !r.valid);
  process.stdout.write(failed.length === 0 ? "\nall runs passed\n" : `\n${failed.length} of ${results.length} run(s) FAILED\n`);
  return failed.length === 0 ? 0 : 1;
}

/** The fault × workload table of docs/fault-matrix.md, from this invocation's results. */
function matrixMarkdown(results: readonly RunResult[]): string {
  const workloads = [...new Set(results.map((r) => r.workload))];
  const faults = [...new Set(results.map((r) => (r.faults.length === 0 ? "none" : r.faults.join("+"))))];
  const cell = (r: RunResult | undefined): string => {
    if (r === undefined) return "-";
    const ok = Object.values(r.ops).reduce((n, c) => n + c.ok, 0);
    const info = Object.values(r.ops).reduce((n, c) => n + c.info, 0);
    return `${r.valid ? "pass" : `**FAIL** (${[...r.checker.anomalyTypes, ...r.nemesis.problems.map((p) => p.kind), ...(r.integrityCheck !== "ok" ? ["integrity"] : [])].join(", ")})`} ` +
      `${ok} ok / ${info} info, ${r.nemesis.episodes} ep.`;
  };
  const rows = faults.map((f) => `| ${f} | ${workloads.map((w) => cell(results.find((r) => r.workload === w && (r.faults.length === 0 ? "none" : r.faults.join("+")) === f))).join(" | ")} |`);
  return [`| fault | ${workloads.join(" | ")} |`, `|---|${workloads.map(() => "---").join("|")}|`, ...rows, ""].join("\n");
}

process.exitCode = await main();
