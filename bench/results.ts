/**
 * The results model: what `results.json` holds, and how repeats become one row of the report.
 *
 * A summary row is one (system, workload, clients): every figure is the median of the successful
 * repeats (peak memory: the maximum, since it is a peak), the spread of ops/s is kept beside it, and
 * ratios to PostgreSQL are computed from the medians of both, at the same workload and client count
 * (the in-process SQLite bound, measured at 1 client, is compared with PostgreSQL at 1 client).
 * The latency CDF comes from the repeat whose throughput is the median one.
 */
import type { HistogramData } from "./histogram.js";
import type { RunResult } from "./harness.js";
import { median, medianIndex, ratio, relativeSpread } from "./stats.js";
import type { SystemName } from "./systems/system.js";
import type { WorkloadName, WorkloadParams } from "./workloads/workload.js";

export const RESULTS_SCHEMA = "borealis-bench/1";

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryBytes: number;
  readonly os: string;
  readonly kernel: string;
  readonly node: string;
  readonly loadAverageAtStart: readonly number[];
  readonly loadAverageAtEnd: readonly number[];
}

export interface RunConfig {
  readonly quick: boolean;
  readonly systems: readonly SystemName[];
  readonly workloads: readonly WorkloadName[];
  readonly clients: readonly number[];
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly repeats: number;
  readonly loadgenProcesses: number;
  readonly params: WorkloadParams;
  readonly restartRecords: readonly number[];
}

export interface SystemStatus {
  readonly name: SystemName;
  readonly title: string;
  readonly status: "ok" | "failed";
  /** Why it failed to start (verbatim in the report). */
  readonly reason: string | null;
  readonly failureKind: "not-installable" | "failed" | null;
  readonly version: string | null;
  readonly clientLibrary: string;
  readonly clientModel: "network" | "in-process";
  readonly settings: Readonly<Record<string, string>>;
  readonly startMs: number | null;
}

export interface RepeatFigures {
  readonly ok: boolean;
  readonly error: string | null;
  readonly opsPerSec: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly errors: number;
  readonly retries: number;
}

export interface Ratios {
  readonly opsPerSec: number | null;
  readonly p50: number | null;
  readonly p99: number | null;
  readonly serverCpuPerOp: number | null;
  readonly logBytesPerCommit: number | null;
  readonly netBytesPerOp: number | null;
  readonly serverPeakRss: number | null;
}

export interface SummaryRow {
  readonly system: SystemName;
  readonly workload: WorkloadName;
  readonly clients: number;
  readonly okRepeats: number;
  readonly failedRepeats: number;
  readonly opsPerSec: number | null;
  /** (max − min) / median of ops/s over the repeats. */
  readonly opsPerSecSpread: number | null;
  readonly rowsPerSec: number | null;
  readonly elapsedMs: number | null;
  readonly p50Us: number | null;
  readonly p95Us: number | null;
  readonly p99Us: number | null;
  readonly p999Us: number | null;
  readonly maxUs: number | null;
  readonly errors: number;
  readonly retries: number;
  readonly commits: number;
  readonly serverCpuPerOpUs: number | null;
  readonly clientCpuPerOpUs: number | null;
  readonly serverCores: number | null;
  readonly logBytesPerCommit: number | null;
  readonly logRecordsPerCommit: number | null;
  readonly internalNetBytesPerCommit: number | null;
  readonly netBytesPerOp: number | null;
  readonly serverPeakRssBytes: number | null;
  readonly serverPeakProcess: string | null;
  readonly serverSumPeakRssBytes: number | null;
  readonly serverProcesses: number | null;
  /** Peak memory of each of the largest server processes, from the median repeat. */
  readonly serverProcessPeaks: ReadonlyArray<{ readonly process: string; readonly peakRssBytes: number }>;
  readonly clientPeakRssBytes: number | null;
  readonly loadgenProcesses: number;
  readonly extraCounters: Readonly<Record<string, number>>;
  readonly vsPostgres: Ratios | null;
  /** Latency CDF of the median repeat: [µs, fraction ≤]. */
  readonly cdf: ReadonlyArray<readonly [number, number]>;
  readonly histogram: HistogramData | null;
  readonly repeats: readonly RepeatFigures[];
  readonly errorSamples: readonly string[];
}

export interface RestartPoint {
  readonly system: SystemName;
  readonly targetRecords: number;
  /** Median over repeats of the log actually built. */
  readonly records: number | null;
  readonly recordsSource: string | null;
  readonly logBytes: number | null;
  readonly rows: number | null;
  readonly restartMs: number | null;
  readonly repeatsMs: readonly number[];
  readonly method: string | null;
  /** Per repeat, where the restart's time went, when the system says (optional: older results lack it). */
  readonly details?: readonly string[];
  readonly error: string | null;
}

export interface CheckResult {
  readonly system: SystemName;
  readonly workload: WorkloadName;
  readonly ok: boolean;
  readonly message: string;
}

export interface ResultsFile {
  readonly schema: typeof RESULTS_SCHEMA;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationMs: number;
  readonly command: string;
  readonly machine: MachineInfo;
  readonly config: RunConfig;
  readonly systems: readonly SystemStatus[];
  readonly workloads: ReadonlyArray<{ readonly name: WorkloadName; readonly title: string; readonly description: string; readonly kind: string }>;
  readonly results: readonly SummaryRow[];
  readonly restart: readonly RestartPoint[];
  readonly checks: readonly CheckResult[];
}

const MAX_CDF_POINTS = 120;

/** One summary row from the repeats of one (system, workload, clients); ratios are filled in later. */
export function summarize(system: SystemName, workload: WorkloadName, clients: number, runs: readonly RunResult[]): SummaryRow {
  const ok = runs.filter((r) => r.ok);
  const pick = <T extends number | null>(f: (r: RunResult) => T): number | null => median(ok.map(f));
  const max = (f: (r: RunResult) => number | null): number | null => {
    const v = ok.map(f).filter((x): x is number => x !== null);
    return v.length === 0 ? null : Math.max(...v);
  };
  const mid = ok.length > 0 ? ok[medianIndex(ok.map((r) => r.opsPerSec))]! : null;
  const samples = new Set<string>();
  for (const r of runs) {
    if (r.error !== null) samples.add(r.error);
    for (const s of r.errorSamples) if (samples.size < 8) samples.add(s);
  }
  return {
    system, workload, clients,
    okRepeats: ok.length,
    failedRepeats: runs.length - ok.length,
    opsPerSec: pick((r) => r.opsPerSec),
    opsPerSecSpread: ok.length === 0 ? null : relativeSpread(ok.map((r) => r.opsPerSec)),
    rowsPerSec: pick((r) => r.rowsPerSec),
    elapsedMs: pick((r) => r.elapsedMs),
    p50Us: pick((r) => r.latency.p50Us),
    p95Us: pick((r) => r.latency.p95Us),
    p99Us: pick((r) => r.latency.p99Us),
    p999Us: pick((r) => r.latency.p999Us),
    maxUs: max((r) => r.latency.maxUs),
    errors: runs.reduce((s, r) => s + r.errors, 0),
    retries: runs.reduce((s, r) => s + r.retries, 0),
    commits: runs.reduce((s, r) => s + r.commits, 0),
    serverCpuPerOpUs: pick((r) => r.serverCpuPerOpUs),
    clientCpuPerOpUs: pick((r) => r.clientCpuPerOpUs),
    serverCores: pick((r) => r.serverCores),
    logBytesPerCommit: pick((r) => r.logBytesPerCommit),
    logRecordsPerCommit: pick((r) => r.logRecordsPerCommit),
    internalNetBytesPerCommit: pick((r) => r.internalNetBytesPerCommit),
    netBytesPerOp: pick((r) => r.netBytesPerOp),
    serverPeakRssBytes: max((r) => r.server.largestPeakRssBytes),
    serverPeakProcess: mid?.server.largestProcess ?? null,
    serverSumPeakRssBytes: max((r) => r.server.sumPeakRssBytes),
    serverProcesses: max((r) => r.server.processes),
    serverProcessPeaks: mid?.server.top.map((p) => ({ process: p.comm, peakRssBytes: p.peakRssBytes })) ?? [],
    clientPeakRssBytes: max((r) => r.client.largestPeakRssBytes),
    loadgenProcesses: runs[0]?.loadgenProcesses ?? 0,
    extraCounters: mid?.extraCounters ?? {},
    vsPostgres: null,
    cdf: mid === null ? [] : mid.histogram.cdf(MAX_CDF_POINTS),
    histogram: mid === null ? null : mid.histogram.toData(),
    repeats: runs.map((r) => ({
      ok: r.ok, error: r.error, opsPerSec: r.opsPerSec, p50Us: r.latency.p50Us, p99Us: r.latency.p99Us, errors: r.errors, retries: r.retries,
    })),
    errorSamples: [...samples],
  };
}

/** Fills `vsPostgres` for every row that has a PostgreSQL row at the same workload and clients. */
export function withRatios(rows: readonly SummaryRow[]): SummaryRow[] {
  const pgRow = (w: WorkloadName, c: number): SummaryRow | undefined =>
    rows.find((r) => r.system === "postgres" && r.workload === w && r.clients === c && r.okRepeats > 0);
  return rows.map((r) => {
    const pg = pgRow(r.workload, r.clients);
    if (pg === undefined || r.okRepeats === 0) return r;
    const throughput = r.workload === "bulk" ? ratio(r.rowsPerSec, pg.rowsPerSec) : ratio(r.opsPerSec, pg.opsPerSec);
    return {
      ...r,
      vsPostgres: {
        opsPerSec: throughput,
        p50: ratio(r.p50Us, pg.p50Us),
        p99: ratio(r.p99Us, pg.p99Us),
        serverCpuPerOp: ratio(r.serverCpuPerOpUs, pg.serverCpuPerOpUs),
        logBytesPerCommit: ratio(r.logBytesPerCommit, pg.logBytesPerCommit),
        netBytesPerOp: ratio(r.netBytesPerOp, pg.netBytesPerOp),
        serverPeakRss: ratio(r.serverPeakRssBytes, pg.serverPeakRssBytes),
      },
    };
  });
}
