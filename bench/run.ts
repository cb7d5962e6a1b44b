/**
 * `npm run bench`: Borealis and its anchors (PostgreSQL, SQLite) measured in one run, on one machine,
 * with one report. This is the entry point: options, the plan, the order of runs, progress, and the
 * lifecycle of the systems (started once at the beginning, stopped at the end — also on Ctrl-C or an
 * exception; see cleanup.ts).
 *
 * Order: systems are interleaved within every repeat of every (workload, clients) point, rotating
 * which goes first, so slow drift on a shared VM (a neighbour's job, thermal or memory pressure) lands
 * on every system alike instead of on whichever ran last. Then the bulk load, then the crash-restart
 * measurements (they crash the servers, so they come last).
 */
import { mkdtempSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Cleanup } from "./cleanup.js";
import { failedRun, runOnce, type RunResult } from "./harness.js";
import { writeReport, terminalSummary } from "./report.js";
import {
  RESULTS_SCHEMA, summarize, withRatios, type CheckResult, type MachineInfo, type ResultsFile, type RestartPoint, type RunConfig,
  type SummaryRow, type SystemStatus,
} from "./results.js";
import { fmtBytes, fmtDuration, fmtNum, fmtUs, median } from "./stats.js";
import { loadSystem } from "./systems/index.js";
import { SYSTEM_NAMES, SystemUnavailable, type BenchSystem, type RunningSystem, type SystemName } from "./systems/system.js";
import { WORKLOADS } from "./workloads/index.js";
import { WORKLOAD_NAMES, type Workload, type WorkloadName, type WorkloadParams } from "./workloads/workload.js";

const HELP = `Usage: node dist/bench/run.js [options]      (npm run bench -- [options])

Measures Borealis, PostgreSQL and SQLite side by side and writes results.json, report.md and
charts/*.svg. PostgreSQL is installed (apt-get) when missing and runs in a temporary directory.

Options:
  --quick                 smoke-test sizes: 1.5 s runs, 1 repeat, clients 1 and 32, small loads (< 2 min)
  --systems LIST          comma-separated: borealis,borealis-hrana,postgres,sqlite (default: all; a
                          system that fails to start is reported as such). borealis-hrana is the same
                          Borealis server through a lean Hrana client instead of @libsql/client; the two
                          Borealis rows share one cluster
  --workloads LIST        write,read,mix,transfer,bulk,restart (default: all)
  --clients LIST          concurrent clients for timed workloads (default 1,8,32,64; quick 1,32)
  --duration S            measured seconds per run (default 15; quick 1.5)
  --warmup S              warm-up seconds before each measured window (default 5; quick 0.5)
  --repeats N             runs per point; figures are medians (default 3; quick 1)
  --loadgen-procs N       load-generator processes per run (default 2)
  --preload-rows N        rows in kv for reads and the mix (default 100000; quick 10000)
  --bulk-rows N           rows the bulk load inserts (default 1000000; quick 10000)
  --restart-records LIST  log lengths for the restart figure (default 1000,100000,1000000; quick 1000,10000)
  --out DIR               output directory (default bench/results, quick: bench/results/quick)
  --help                  this text
`;

type Phase = WorkloadName | "restart";
/**
 * Time allowed to build one restart log: the quick run must end in under two minutes whatever the
 * speed of the system; a log short of its target is drawn at the length it reached. A full run's
 * longest log, Borealis's 1 M redo records, takes about 3 minutes on the loaded 2-core VM (its
 * storage nodes apply ~5–7 k records/s); the budget leaves room for a slower day.
 */
const QUICK_RESTART_BUDGET_MS = 3_000;
const FULL_RESTART_BUDGET_MS = 600_000;
const PHASES: readonly Phase[] = [...WORKLOAD_NAMES, "restart"];

interface Options {
  readonly config: RunConfig;
  readonly outDir: string;
  readonly explicitSystems: boolean;
  readonly restart: boolean;
}

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  // Bounded by the filesystem's depth.
  for (let i = 0; i < 20; i++) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "borealis") return dir;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return process.cwd();
}

function list(value: string | undefined, what: string): string[] | undefined {
  if (value === undefined) return undefined;
  const items = value.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
  if (items.length === 0) throw new UsageError(`--${what} needs at least one value`);
  return items;
}

function positiveInts(value: string | undefined, what: string): number[] | undefined {
  const items = list(value, what);
  return items?.map((s) => {
    const n = Number(s.replace(/_/g, ""));
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${what}: ${s} is not a positive integer`);
    return n;
  });
}

function positive(value: string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${what}: ${value} is not a positive number`);
  return n;
}

class UsageError extends Error {}

function parseOptions(argv: readonly string[]): Options | "help" {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: "boolean" },
      systems: { type: "string" },
      workloads: { type: "string" },
      clients: { type: "string" },
      duration: { type: "string" },
      warmup: { type: "string" },
      repeats: { type: "string" },
      "loadgen-procs": { type: "string" },
      "preload-rows": { type: "string" },
      "bulk-rows": { type: "string" },
      "restart-records": { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help === true) return "help";
  const quick = values.quick === true;
  const systems = (list(values.systems, "systems") ?? [...SYSTEM_NAMES]).map((s) => {
    if (!(SYSTEM_NAMES as readonly string[]).includes(s)) throw new UsageError(`--systems: unknown system ${s} (known: ${SYSTEM_NAMES.join(", ")})`);
    return s as SystemName;
  });
  const phases = (list(values.workloads, "workloads") ?? [...PHASES]).map((w) => {
    if (!(PHASES as readonly string[]).includes(w)) throw new UsageError(`--workloads: unknown workload ${w} (known: ${PHASES.join(", ")})`);
    return w as Phase;
  });
  const repeats = positiveInts(values.repeats, "repeats")?.[0] ?? (quick ? 1 : 3);
  const params: WorkloadParams = {
    preloadRows: positiveInts(values["preload-rows"], "preload-rows")?.[0] ?? (quick ? 10_000 : 100_000),
    accounts: quick ? 1_000 : 10_000,
    bulkRows: positiveInts(values["bulk-rows"], "bulk-rows")?.[0] ?? (quick ? 10_000 : 1_000_000),
    batchRows: 500,
    batchesPerTxn: 2,
    mixReadPercent: 90,
    maxAttempts: 20,
  };
  const config: RunConfig = {
    quick,
    systems: [...new Set(systems)],
    workloads: WORKLOAD_NAMES.filter((w) => phases.includes(w)),
    clients: [...new Set(positiveInts(values.clients, "clients") ?? (quick ? [1, 32] : [1, 8, 32, 64]))].sort((a, b) => a - b),
    warmupMs: (positive(values.warmup, "warmup") ?? (quick ? 0.5 : 5)) * 1000,
    durationMs: (positive(values.duration, "duration") ?? (quick ? 1.5 : 15)) * 1000,
    repeats,
    loadgenProcesses: positiveInts(values["loadgen-procs"], "loadgen-procs")?.[0] ?? 2,
    params,
    restartRecords: phases.includes("restart") ? (positiveInts(values["restart-records"], "restart-records") ?? (quick ? [1_000, 10_000] : [1_000, 100_000, 1_000_000])) : [],
  };
  const root = repoRoot();
  const outDir = resolve(values.out ?? join(root, "bench", "results", ...(quick ? ["quick"] : [])));
  return { config, outDir, explicitSystems: values.systems !== undefined, restart: phases.includes("restart") };
}

function machineInfo(): MachineInfo {
  let os = "Linux";
  try {
    os = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1] ?? os;
  } catch {
    // Not every system has it.
  }
  return {
    cpuModel: cpus()[0]?.model.trim() ?? "unknown CPU",
    cores: cpus().length,
    memoryBytes: totalmem(),
    os,
    kernel: release(),
    node: process.version,
    loadAverageAtStart: loadavg(),
    loadAverageAtEnd: [],
  };
}

function log(line: string): void {
  process.stderr.write(line + "\n");
}

interface Started {
  readonly system: BenchSystem;
  readonly running: RunningSystem;
}

async function main(argv: readonly string[]): Promise<number> {
  let options: Options | "help";
  try {
    options = parseOptions(argv);
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS") === true) {
      log(`bench: ${(e as Error).message}\n\n${HELP}`);
      return 2;
    }
    throw e;
  }
  if (options === "help") {
    process.stdout.write(HELP);
    return 0;
  }
  const { config, outDir } = options;
  const startedAt = new Date();
  const t0 = performance.now();
  const machine = machineInfo();
  const cleanup = new Cleanup();
  cleanup.installProcessHandlers(log);
  const command = `node ${relative(process.cwd(), fileURLToPath(import.meta.url))} ${argv.join(" ")}`.trim();
  log(`bench: ${config.quick ? "quick run" : "full run"} — systems ${config.systems.join(", ")}; workloads ${config.workloads.join(", ")}${options.restart ? ", restart" : ""}; clients ${config.clients.join(", ")}; ${config.warmupMs / 1000}+${config.durationMs / 1000} s × ${config.repeats}`);
  log(`bench: ${machine.cpuModel}, ${machine.cores} cores, ${fmtBytes(machine.memoryBytes)}; load ${machine.loadAverageAtStart.map((x) => x.toFixed(2)).join(" ")}`);

  // ---- start the systems
  // One after the other in a full run, so each start time is its own; at once in a quick run, which
  // has a time limit (start times are then measured side by side and say so).
  const startOne = async (name: SystemName): Promise<{ status: SystemStatus; started: Started | null }> => {
    const system = await loadSystem(name);
    const workDir = mkdtempSync(join(tmpdir(), `borealis-bench-${name}-`));
    cleanup.addDir(workDir);
    const ts = performance.now();
    try {
      log(`[start] ${system.title}…`);
      const running = await system.start({ workDir, cleanup, log: (l) => log(`[start] ${l}`) });
      const startMs = performance.now() - ts;
      log(`[start] ${system.title}: ${running.version} ready in ${fmtNum(startMs)} ms`);
      return {
        started: { system, running },
        status: {
          name, title: system.title, status: "ok", reason: null, failureKind: null, version: running.version,
          clientLibrary: system.clientLibrary, clientModel: system.clientModel, settings: running.settings, startMs,
        },
      };
    } catch (e) {
      const reason = e instanceof SystemUnavailable ? e.reason : `${(e as Error).message}`;
      log(`[start] ${system.title}: failed to start: ${reason}`);
      return {
        started: null,
        status: {
          name, title: system.title, status: "failed", reason, failureKind: e instanceof SystemUnavailable ? e.kind : "failed",
          version: null, clientLibrary: system.clientLibrary, clientModel: system.clientModel, settings: {}, startMs: null,
        },
      };
    }
  };
  const outcomes: Array<{ status: SystemStatus; started: Started | null }> = [];
  if (config.quick) outcomes.push(...(await Promise.all(config.systems.map(startOne))));
  else for (const name of config.systems) outcomes.push(await startOne(name));
  const statuses: SystemStatus[] = outcomes.map((o) => o.status);
  const started: Started[] = outcomes.flatMap((o) => (o.started === null ? [] : [o.started]));

  // ---- plan
  const timed = config.workloads.map((w) => WORKLOADS[w]).filter((w) => w.kind === "timed");
  const fixed = config.workloads.map((w) => WORKLOADS[w]).filter((w) => w.kind === "fixed");
  const clientsFor = (s: BenchSystem, c: number): boolean => (s.clientModel === "in-process" ? c === config.clients[0] : true);
  let totalRuns = 0;
  for (const _w of timed) for (const c of config.clients) for (const s of started) if (clientsFor(s.system, c)) totalRuns += config.repeats;
  totalRuns += fixed.length * started.length * config.repeats;
  // Once per server: the two Borealis rows share one cluster, and with it one `restart` object.
  const restartSystems = started.filter((s, i) => s.running.restart !== undefined && started.findIndex((o) => o.running.restart === s.running.restart) === i);
  const restartSteps = restartSystems.length * config.restartRecords.length;
  let runIndex = 0;
  const perRunMs = config.warmupMs + config.durationMs + 800;
  const progress = (line: string): void => {
    const elapsed = performance.now() - t0;
    const leftRuns = totalRuns - runIndex;
    log(`[${String(runIndex).padStart(String(totalRuns).length)}/${totalRuns}] ${line}  (${fmtDuration(elapsed)} elapsed${leftRuns > 0 ? `, ≥${fmtDuration(leftRuns * perRunMs)} left` : ""})`);
  };

  const runs = new Map<string, RunResult[]>();
  const key = (s: SystemName, w: WorkloadName, c: number): string => `${s}/${w}/${c}`;
  // One sequence of insert ids for every system: the two Borealis rows share one database.
  let idBase = 10_000_000;
  const checks: CheckResult[] = [];

  const prepare = async (w: Workload): Promise<void> => {
    for (const s of started) {
      // A failure here is logged; the runs that follow then fail and say why in the report.
      try {
        const conn = await s.system.connect(s.running.clientSpec);
        try {
          await w.prepare(conn, config.params, (l) => log(`[prepare] ${s.system.title}: ${l}`));
        } finally {
          await conn.close();
        }
      } catch (e) {
        log(`[prepare] ${s.system.title} ${w.name} failed: ${(e as Error).message}`);
      }
    }
  };
  const measure = async (s: Started, w: Workload, clients: number, repeat: number): Promise<void> => {
    const name = s.system.name;
    let before: string | null = null;
    if (w.beforeRun !== undefined) {
      try {
        const conn = await s.system.connect(s.running.clientSpec);
        try {
          await w.beforeRun(conn, config.params);
        } finally {
          await conn.close();
        }
      } catch (e) {
        before = `before the run: ${(e as Error).message}`;
      }
    }
    const result = before !== null ? failedRun(before, [], 0) : await runOnce({
      system: s.system, running: s.running, workload: w, params: config.params, clients,
      loadgenProcesses: config.loadgenProcesses, warmupMs: config.warmupMs, durationMs: config.durationMs,
      deadlineMs: config.quick ? 120_000 : 1_800_000, idBase, seed: repeat + 1, cleanup,
    });
    idBase += (result.maxSeq + 1) * clients + clients;
    const k = key(name, w.name, clients);
    runs.set(k, [...(runs.get(k) ?? []), result]);
    runIndex++;
    const what = `${w.name.padEnd(8)} c=${String(clients).padEnd(3)} ${s.system.title.padEnd(10)} rep ${repeat + 1}/${config.repeats}`;
    if (result.ok) {
      const tput = w.kind === "fixed" ? `${fmtNum(result.rowsPerSec)} rows/s in ${fmtNum(result.elapsedMs / 1000)} s` : `${fmtNum(result.opsPerSec)} ops/s`;
      progress(`${what}  ${tput}  p50 ${fmtUs(result.latency.p50Us)}  p99 ${fmtUs(result.latency.p99Us)}  cpu/op ${fmtUs(result.serverCpuPerOpUs)}${result.errors > 0 ? `  errors ${result.errors}` : ""}`);
    } else {
      progress(`${what}  FAILED: ${result.error}${result.errorSamples.length > 0 ? ` (${result.errorSamples[0]})` : ""}`);
    }
  };
  const check = async (w: Workload): Promise<void> => {
    if (w.check === undefined) return;
    for (const s of started) {
      const conn = await s.system.connect(s.running.clientSpec).catch(() => null);
      if (conn === null) continue;
      try {
        checks.push({ system: s.system.name, workload: w.name, ok: true, message: await w.check(conn, config.params) });
      } catch (e) {
        checks.push({ system: s.system.name, workload: w.name, ok: false, message: (e as Error).message });
        log(`[check] ${s.system.title} ${w.name}: FAILED: ${(e as Error).message}`);
      } finally {
        await conn.close();
      }
    }
  };

  // ---- timed workloads, systems interleaved
  let rotation = 0;
  for (const w of timed) {
    await prepare(w);
    for (const c of config.clients) {
      for (let r = 0; r < config.repeats; r++) {
        const order = started.map((_, i) => started[(i + rotation) % started.length]!);
        rotation++;
        for (const s of order) if (clientsFor(s.system, c)) await measure(s, w, s.system.clientModel === "in-process" ? 1 : c, r);
      }
    }
    await check(w);
  }
  // ---- fixed work (bulk load): one client
  for (const w of fixed) {
    await prepare(w);
    for (let r = 0; r < config.repeats; r++) for (const s of started) await measure(s, w, 1, r);
    await check(w);
  }
  // ---- crash and restart, by log length
  const restart: RestartPoint[] = [];
  let restartIndex = 0;
  for (const s of restartSystems) {
    const support = s.running.restart!;
    if (support.prepareTable !== undefined && config.restartRecords.length > 0) {
      // A failure here is logged; each log then builds what it needs itself.
      await support.prepareTable(Math.max(...config.restartRecords), config.quick ? QUICK_RESTART_BUDGET_MS : FULL_RESTART_BUDGET_MS)
        .then((line) => log(`[restart] ${s.system.title}: ${line}`), (e: Error) => log(`[restart] ${s.system.title}: preparing failed: ${e.message}`));
    }
    for (const target of config.restartRecords) {
      restartIndex++;
      // The longest log is built once: it is the most expensive point and the least noisy one.
      const reps = target >= 1_000_000 ? 1 : config.repeats;
      const times: number[] = [];
      const logs: Array<{ records: number; bytes: number | null; rows: number; source: string }> = [];
      let method: string | null = null;
      const details: string[] = [];
      let error: string | null = null;
      for (let i = 0; i < reps && error === null; i++) {
        try {
          let lastShown = 0;
          const prepared = await support.prepareLog(target, config.quick ? QUICK_RESTART_BUDGET_MS : FULL_RESTART_BUDGET_MS, (n) => {
            if (n - lastShown >= Math.max(target / 4, 1)) {
              lastShown = n;
              log(`[restart ${restartIndex}/${restartSteps}] ${s.system.title} rep ${i + 1}/${reps}: log ${fmtNum(n)} / ${fmtNum(target)} records`);
            }
          });
          const m = await support.crashAndRestart();
          times.push(m.restartMs);
          logs.push({ records: prepared.records, bytes: prepared.bytes, rows: prepared.rows, source: prepared.recordsSource });
          method = m.method;
          if (m.detail !== undefined) details.push(m.detail);
          log(`[restart ${restartIndex}/${restartSteps}] ${s.system.title} rep ${i + 1}/${reps}: ${fmtNum(prepared.records)} log records (${prepared.recordsSource}, ${fmtBytes(prepared.bytes)}) → serving again in ${fmtNum(m.restartMs)} ms${m.detail === undefined ? "" : `; ${m.detail}`}`);
        } catch (e) {
          error = (e as Error).message;
          log(`[restart ${restartIndex}/${restartSteps}] ${s.system.title} @${fmtNum(target)}: FAILED: ${error}`);
        }
      }
      restart.push({
        system: s.system.name, targetRecords: target,
        records: median(logs.map((l) => l.records)), recordsSource: logs[0]?.source ?? null,
        logBytes: median(logs.map((l) => l.bytes)), rows: median(logs.map((l) => l.rows)),
        restartMs: median(times), repeatsMs: times, method, details, error,
      });
    }
  }

  // ---- stop, summarize, write
  log("[stop] stopping the systems");
  for (const s of [...started].reverse()) await s.running.stop().catch((e: Error) => log(`[stop] ${s.system.title}: ${e.message}`));
  await cleanup.runAll(log);

  const rows: SummaryRow[] = [];
  for (const w of [...timed, ...fixed]) {
    for (const s of started) {
      const cs = w.kind === "fixed" ? [1] : s.system.clientModel === "in-process" ? [1] : config.clients;
      for (const c of cs) {
        const rs = runs.get(key(s.system.name, w.name, c));
        if (rs !== undefined) rows.push(summarize(s.system.name, w.name, c, rs));
      }
    }
  }
  const results: ResultsFile = {
    schema: RESULTS_SCHEMA,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    durationMs: performance.now() - t0,
    command,
    machine: { ...machine, loadAverageAtEnd: loadavg() },
    config,
    systems: statuses,
    workloads: [...timed, ...fixed].map((w) => ({ name: w.name, title: w.title, description: w.description, kind: w.kind })),
    results: withRatios(rows),
    restart,
    checks,
  };
  const files = writeReport(outDir, results, relative(outDir, join(repoRoot(), "bench", "README.md")));
  process.stdout.write(`\n${terminalSummary(results)}\n\n`);
  log(`bench: done in ${fmtDuration(results.durationMs)}; wrote ${relative(process.cwd(), files.json)}, ${relative(process.cwd(), files.markdown)} and ${files.charts.length} charts`);

  const failedRuns = rows.filter((r) => r.failedRepeats > 0).length;
  const failedChecks = checks.filter((c) => !c.ok).length;
  const failedExplicit = options.explicitSystems ? statuses.filter((s) => s.status === "failed").length : 0;
  const failedRestart = restart.filter((p) => p.error !== null).length;
  if (rows.length === 0 && restart.length === 0) {
    log("bench: nothing was measured");
    return 1;
  }
  if (failedRuns + failedChecks + failedExplicit + failedRestart > 0) {
    log(`bench: ${failedRuns} point(s) with failed runs, ${failedChecks} failed check(s), ${failedRestart} failed restart point(s), ${failedExplicit} requested system(s) not started`);
    return 1;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    log(`bench: ${(e as Error).stack ?? String(e)}`);
    // The exit handler of Cleanup stops whatever is still running.
    process.exit(1);
  },
);
