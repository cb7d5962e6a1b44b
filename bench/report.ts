/**
 * Writes what a run measured: `results.json` (everything, for machines), `report.md` (for engineers:
 * machine, systems, summary table, one section per workload with its charts, restart figure, checks,
 * method) and `charts/*.svg`; and renders the terminal's summary table.
 *
 * A system that failed to start is never silently missing: it is listed with its reason at the top of
 * the report and of the terminal summary ("Borealis: failed to start: …").
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ResultsFile, RestartPoint, SummaryRow } from "./results.js";
import { fmtBytes, fmtDuration, fmtNum, fmtRatio, fmtUs } from "./stats.js";
import { lineChart, ninesLabel, ninesOf, SYSTEM_COLORS, usLabel, type Series } from "./svg.js";
import type { SystemName } from "./systems/system.js";
import type { WorkloadName } from "./workloads/workload.js";

const TITLES: Readonly<Record<SystemName, string>> = {
  borealis: "Borealis", "borealis-hrana": "Borealis (lean Hrana client)", postgres: "PostgreSQL", sqlite: "SQLite",
};
/** Display order. */
const SYSTEM_ORDER: readonly SystemName[] = ["borealis", "borealis-hrana", "postgres", "sqlite"];

function systemLabel(r: ResultsFile, name: SystemName): string {
  const s = r.systems.find((x) => x.name === name);
  return s?.clientModel === "in-process" ? `${TITLES[name]} (in-process bound)` : TITLES[name];
}

/** The rows of the summary table, in display order: workload, clients, system. */
function orderedRows(r: ResultsFile): SummaryRow[] {
  const wOrder = r.workloads.map((w) => w.name);
  return [...r.results].sort((a, b) =>
    wOrder.indexOf(a.workload) - wOrder.indexOf(b.workload) || a.clients - b.clients || SYSTEM_ORDER.indexOf(a.system) - SYSTEM_ORDER.indexOf(b.system));
}

function throughputCell(row: SummaryRow): string {
  if (row.okRepeats === 0) return "failed";
  return row.workload === "bulk" ? `${fmtNum(row.rowsPerSec)} rows/s` : fmtNum(row.opsPerSec);
}

interface Column {
  readonly head: string;
  readonly cell: (row: SummaryRow) => string;
  readonly right?: boolean;
}

function summaryColumns(r: ResultsFile): Column[] {
  return [
    { head: "workload", cell: (x) => x.workload },
    { head: "clients", cell: (x) => String(x.clients), right: true },
    { head: "system", cell: (x) => systemLabel(r, x.system) },
    { head: "ops/s", cell: throughputCell, right: true },
    { head: "×PG", cell: (x) => (x.system === "postgres" ? "1" : fmtRatio(x.vsPostgres?.opsPerSec)), right: true },
    { head: "p50", cell: (x) => fmtUs(x.p50Us), right: true },
    { head: "p95", cell: (x) => fmtUs(x.p95Us), right: true },
    { head: "p99", cell: (x) => fmtUs(x.p99Us), right: true },
    { head: "CPU/op", cell: (x) => fmtUs(x.serverCpuPerOpUs), right: true },
    { head: "log B/commit", cell: (x) => (x.commits > 0 ? fmtNum(x.logBytesPerCommit) : "–"), right: true },
    { head: "net B/op", cell: (x) => fmtNum(x.netBytesPerOp), right: true },
    { head: "peak RSS", cell: (x) => fmtBytes(x.serverPeakRssBytes), right: true },
    { head: "err", cell: (x) => String(x.errors + x.failedRepeats), right: true },
  ];
}

function markdownTable(columns: readonly Column[], rows: readonly SummaryRow[]): string {
  const head = `| ${columns.map((c) => c.head).join(" | ")} |`;
  const sep = `|${columns.map((c) => (c.right === true ? "---:" : "---")).join("|")}|`;
  return [head, sep, ...rows.map((row) => `| ${columns.map((c) => c.cell(row)).join(" | ")} |`)].join("\n");
}

function failedSystemsLines(r: ResultsFile): string[] {
  return r.systems.filter((s) => s.status === "failed").map((s) => `${s.title}: failed to start: ${s.reason ?? "unknown reason"}`);
}

/** The terminal's summary table (plain text, aligned). */
export function terminalSummary(r: ResultsFile): string {
  const columns = summaryColumns(r);
  const rows = orderedRows(r);
  const cells = [columns.map((c) => c.head), ...rows.map((row) => columns.map((c) => c.cell(row)))];
  const widths = columns.map((_, i) => Math.max(...cells.map((line) => line[i]!.length)));
  const lines = cells.map((line) => line.map((cell, i) => (columns[i]!.right === true ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join("  "));
  lines.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  const out = [...lines];
  const restart = r.restart.filter((p) => p.restartMs !== null || p.error !== null);
  if (restart.length > 0) {
    out.push("", "restart after a crash, by log length since the last checkpoint/materialization:");
    const width = Math.max(...restart.map((p) => TITLES[p.system].length));
    for (const p of restart) {
      out.push(`  ${TITLES[p.system].padEnd(width)} ${fmtNum(p.records ?? p.targetRecords).padStart(9)} records  ${p.restartMs === null ? `failed: ${p.error}` : `${fmtNum(p.restartMs)} ms`}`);
    }
  }
  for (const c of r.checks.filter((x) => !x.ok)) out.push(`CHECK FAILED ${TITLES[c.system]} ${c.workload}: ${c.message}`);
  for (const line of failedSystemsLines(r)) out.push(line);
  return out.join("\n");
}

// -------------------------------------------------------------------------------------------- charts

function throughputChart(r: ResultsFile, workload: WorkloadName, title: string): string {
  const rows = r.results.filter((x) => x.workload === workload && x.okRepeats > 0);
  const clientTicks = [...new Set(r.config.clients)].sort((a, b) => a - b);
  const minX = clientTicks[0] ?? 1;
  const maxX = clientTicks[clientTicks.length - 1] ?? 64;
  const series: Series[] = [];
  for (const s of r.systems.filter((x) => x.status === "ok")) {
    const mine = rows.filter((x) => x.system === s.name).sort((a, b) => a.clients - b.clients);
    if (mine.length === 0) continue;
    if (s.clientModel === "in-process") {
      const y = mine[0]!.opsPerSec ?? 0;
      series.push({ name: `${s.title} (1 conn., in-process)`, color: SYSTEM_COLORS[s.name] ?? "#000", dashed: true, markers: false, points: [[minX, y], [Math.max(maxX, minX * 2), y]] });
    } else {
      series.push({ name: s.title, color: SYSTEM_COLORS[s.name] ?? "#000", points: mine.map((x) => [x.clients, x.opsPerSec ?? 0] as const) });
    }
  }
  return lineChart({
    title: `${title}: throughput`,
    note: `median of ${r.config.repeats} × ${r.config.durationMs / 1000} s runs`,
    x: { label: "concurrent clients", scale: "log", ticks: clientTicks, min: minX, max: Math.max(maxX, minX * 2), format: (v) => String(v) },
    y: { label: "operations per second", scale: "linear" },
    series,
  });
}

function latencyChart(r: ResultsFile, workload: WorkloadName, title: string, clients: number): string {
  const series: Series[] = [];
  let maxNines = 2;
  for (const s of r.systems.filter((x) => x.status === "ok")) {
    const c = s.clientModel === "in-process" ? 1 : clients;
    const row = r.results.find((x) => x.system === s.name && x.workload === workload && x.clients === c && x.okRepeats > 0);
    if (row === undefined || row.cdf.length === 0) continue;
    const total = row.histogram?.count ?? 100;
    const top = Math.min(4, Math.max(2, Math.floor(Math.log10(Math.max(total, 10)))));
    maxNines = Math.max(maxNines, top);
    // Percentile 0 is the fastest operation; the CDF's first point may already be at p30.
    const pts: Array<[number, number]> = row.histogram !== null && row.histogram.count > 0 ? [[0, row.histogram.minUs]] : [];
    for (const [us, f] of row.cdf) {
      const x = ninesOf(f);
      if (x <= top) pts.push([x, us]);
    }
    if (row.maxUs !== null) pts.push([top, row.maxUs]);
    series.push({
      name: `${s.title} @${c}${s.clientModel === "in-process" ? " (in-proc.)" : ""}`,
      color: SYSTEM_COLORS[s.name] ?? "#000", markers: false, dashed: s.clientModel === "in-process", points: pts,
    });
  }
  return lineChart({
    title: `${title}: latency by percentile`,
    note: `${clients} clients (SQLite: 1), repeat with the median throughput`,
    x: { label: "percentile", scale: "linear", min: 0, max: maxNines, ticks: Array.from({ length: maxNines + 1 }, (_, i) => i), format: ninesLabel },
    y: { label: "latency", scale: "log", format: usLabel },
    series,
  });
}

function restartChart(r: ResultsFile): string {
  const series: Series[] = [];
  for (const name of SYSTEM_ORDER) {
    const pts = r.restart.filter((p) => p.system === name && p.restartMs !== null)
      .map((p) => [p.records ?? p.targetRecords, p.restartMs!] as const);
    if (pts.length > 0) series.push({ name: TITLES[name], color: SYSTEM_COLORS[name]!, points: pts });
  }
  return lineChart({
    title: "Restart after a crash vs log length",
    note: "records since the last checkpoint/materialization; median of repeats",
    x: { label: "log records to recover", scale: "log" },
    y: { label: "crash → first read served (ms)", scale: "linear" },
    series,
  });
}

// ---------------------------------------------------------------------------------------------- files

function restartTable(points: readonly RestartPoint[]): string {
  const lines = [
    "| system | target records | log records | counted by | log bytes | rows written | restart (median) | repeats |",
    "|---|---:|---:|---|---:|---:|---:|---|",
  ];
  for (const p of points) {
    lines.push(`| ${TITLES[p.system]} | ${fmtNum(p.targetRecords)} | ${fmtNum(p.records)} | ${p.recordsSource ?? "–"} | ${fmtBytes(p.logBytes)} | ${fmtNum(p.rows)} | ${p.restartMs === null ? `failed: ${p.error ?? "?"}` : `${fmtNum(p.restartMs)} ms`} | ${p.repeatsMs.map((ms) => fmtNum(ms)).join(", ")} |`);
  }
  return lines.join("\n");
}

/** Per workload: throughput and latency, then resources — two tables, each readable on one screen. */
function detailTables(r: ResultsFile, rows: readonly SummaryRow[]): string {
  const pgOr = (x: SummaryRow, f: (v: NonNullable<SummaryRow["vsPostgres"]>) => number | null): string =>
    x.system === "postgres" ? "1" : fmtRatio(x.vsPostgres === null ? null : f(x.vsPostgres));
  const speed: Column[] = [
    { head: "clients", cell: (x) => String(x.clients), right: true },
    { head: "system", cell: (x) => systemLabel(r, x.system) },
    { head: "ops/s", cell: throughputCell, right: true },
    { head: "spread", cell: (x) => (x.opsPerSecSpread === null || x.okRepeats < 2 ? "–" : `±${fmtNum((x.opsPerSecSpread * 100) / 2, 2)}%`), right: true },
    { head: "×PG", cell: (x) => pgOr(x, (v) => v.opsPerSec), right: true },
    { head: "p50", cell: (x) => fmtUs(x.p50Us), right: true },
    { head: "p95", cell: (x) => fmtUs(x.p95Us), right: true },
    { head: "p99", cell: (x) => fmtUs(x.p99Us), right: true },
    { head: "p99.9", cell: (x) => fmtUs(x.p999Us), right: true },
    { head: "max", cell: (x) => fmtUs(x.maxUs), right: true },
    { head: "p99 ×PG", cell: (x) => pgOr(x, (v) => v.p99), right: true },
    { head: "retries", cell: (x) => String(x.retries), right: true },
    { head: "errors", cell: (x) => String(x.errors + x.failedRepeats), right: true },
  ];
  const commitCell = (x: SummaryRow, v: number | null, digits = 3): string => (x.commits > 0 ? fmtNum(v, digits) : "–");
  const resources: Column[] = [
    { head: "clients", cell: (x) => String(x.clients), right: true },
    { head: "system", cell: (x) => systemLabel(r, x.system) },
    { head: "server CPU/op", cell: (x) => fmtUs(x.serverCpuPerOpUs), right: true },
    { head: "CPU ×PG", cell: (x) => pgOr(x, (v) => v.serverCpuPerOp), right: true },
    { head: "server cores", cell: (x) => fmtNum(x.serverCores, 2), right: true },
    { head: "client CPU/op", cell: (x) => fmtUs(x.clientCpuPerOpUs), right: true },
    { head: "log B/commit", cell: (x) => commitCell(x, x.logBytesPerCommit), right: true },
    { head: "log ×PG", cell: (x) => (x.commits === 0 ? "–" : pgOr(x, (v) => v.logBytesPerCommit)), right: true },
    { head: "log records/commit", cell: (x) => commitCell(x, x.logRecordsPerCommit, 2), right: true },
    { head: "internal net B/commit", cell: (x) => commitCell(x, x.internalNetBytesPerCommit), right: true },
    { head: "client net B/op", cell: (x) => fmtNum(x.netBytesPerOp), right: true },
    { head: "peak RSS, largest", cell: (x) => `${fmtBytes(x.serverPeakRssBytes)}${x.serverPeakProcess === null ? "" : ` (${x.serverPeakProcess})`}`, right: true },
    { head: "Σ peak RSS (procs)", cell: (x) => `${fmtBytes(x.serverSumPeakRssBytes)} (${x.serverProcesses ?? "–"})`, right: true },
    { head: "loadgen peak RSS", cell: (x) => fmtBytes(x.clientPeakRssBytes), right: true },
  ];
  return `${markdownTable(speed, rows)}

Resources:

${markdownTable(resources, rows)}`;
}

function chartClients(r: ResultsFile): number {
  return r.config.clients.includes(32) ? 32 : Math.max(...r.config.clients);
}

/** `readme`: the link to bench/README.md from the report's directory (bench/results/ by default). */
export function renderMarkdown(r: ResultsFile, readme = "../README.md"): { markdown: string; charts: Map<string, string> } {
  const charts = new Map<string, string>();
  const m = r.machine;
  const out: string[] = [];
  out.push("# Borealis benchmarks: Borealis, PostgreSQL and SQLite side by side");
  out.push("");
  out.push(`Run ${r.startedAt.replace("T", " ").replace(/\.\d+Z$/, " UTC")}, ${fmtDuration(r.durationMs)}${r.config.quick ? " — **quick run (smoke test): short, one repeat; not for comparison**" : ""}.`);
  out.push(`Command: \`${r.command}\``);
  out.push("");
  out.push(`Machine: ${m.cpuModel}, ${m.cores} cores, ${fmtBytes(m.memoryBytes)} RAM; ${m.os}, Linux ${m.kernel}; Node ${m.node}. ` +
    `Load average ${m.loadAverageAtStart.map((x) => x.toFixed(2)).join(" ")} at start, ${m.loadAverageAtEnd.map((x) => x.toFixed(2)).join(" ")} at end ` +
    "(a shared VM: other work on it shows up as spread between repeats).");
  out.push("");
  for (const line of failedSystemsLines(r)) out.push(`> **${line}**`, "");
  out.push("## Systems", "");
  out.push("| system | status | version | client | settings |", "|---|---|---|---|---|");
  for (const s of r.systems) {
    const settings = Object.entries(s.settings).map(([k, v]) => `${k}=${v}`).join(", ");
    out.push(`| ${s.title} | ${s.status === "ok" ? `started in ${fmtNum(s.startMs)} ms${r.config.quick ? " (systems started concurrently)" : ""}` : `**failed to start: ${s.reason}**`} | ${s.version ?? "–"} | ${s.clientLibrary} | ${settings || "–"} |`);
  }
  out.push("");
  out.push(`Timed workloads: ${r.config.warmupMs / 1000} s warm-up, then ${r.config.durationMs / 1000} s measured, ${r.config.repeats} repeat(s), clients ${r.config.clients.join(", ")} ` +
    `spread over up to ${r.config.loadgenProcesses} load-generator processes; systems interleaved within each repeat. Figures are medians of the repeats. ` +
    `How each figure is measured: [bench/README.md](${readme}#figures).`);
  out.push("");
  out.push("## Summary", "");
  out.push("ops/s and ×PG (throughput ÷ PostgreSQL's at the same clients, higher is better); latency percentiles per operation; " +
    "CPU/op = server CPU time ÷ operations; log B/commit = WAL/redo bytes ÷ commits; " +
    "net B/op = client↔server bytes ÷ operations; peak RSS = largest server process.");
  out.push("");
  out.push(markdownTable(summaryColumns(r), orderedRows(r)));
  out.push("");

  const clients = chartClients(r);
  for (const w of r.workloads) {
    const rows = orderedRows(r).filter((x) => x.workload === w.name);
    if (rows.length === 0) continue;
    out.push(`## ${w.title}`, "", w.description, "");
    if (w.kind === "timed") {
      const tName = `throughput-${w.name}.svg`;
      const lName = `latency-${w.name}.svg`;
      charts.set(tName, throughputChart(r, w.name, w.title));
      charts.set(lName, latencyChart(r, w.name, w.title, clients));
      out.push(`![${w.title}: throughput vs clients](charts/${tName})`, "");
      out.push(`![${w.title}: latency by percentile](charts/${lName})`, "");
    } else {
      out.push(`${fmtNum(r.config.params.bulkRows)} rows, ${r.config.params.batchRows} rows per INSERT, ${r.config.params.batchesPerTxn} INSERTs per transaction; ops are transactions.`, "");
    }
    out.push(detailTables(r, rows), "");
    for (const row of rows.filter((x) => x.errorSamples.length > 0)) {
      out.push(`- ${TITLES[row.system]} @${row.clients}: ${row.errorSamples.map((e) => `\`${e.replace(/`/g, "'")}\``).join("; ")}`);
    }
    for (const c of r.checks.filter((x) => x.workload === w.name)) out.push(`- check, ${TITLES[c.system]}: ${c.ok ? "✓" : "✗"} ${c.message}`);
    out.push("");
  }

  if (r.restart.length > 0) {
    out.push("## Restart after a crash, by log length", "");
    out.push("The writer is crashed (no clean shutdown) with a log of N records since its last checkpoint/materialization, restarted, and timed " +
      "until the last committed row reads back through its client. Borealis's target is a flat line (≤ 1 s at any length): storage " +
      "materializes pages in the background, so a restarted writer has nothing to replay. Having no checkpoint, and storage keeping only " +
      "a small backlog above its materialized point, Borealis's N is the redo written for the log (the backlog at the crash is in " +
      "\"counted by\"), by UPDATE transactions of up to 200 random rows of a table of up to 200,000 400-byte rows (~1 record per row updated; " +
      "the table is built once, before any log is counted, so every point restarts on the same database). PostgreSQL replays its WAL from the last checkpoint and SQLite rebuilds its WAL index, both in proportion to the log.");
    out.push("");
    charts.set("restart.svg", restartChart(r));
    out.push("![restart time vs log length](charts/restart.svg)", "");
    out.push(restartTable(r.restart), "");
    const methods = new Map<string, string>();
    for (const p of r.restart) if (p.method !== null) methods.set(TITLES[p.system], p.method);
    for (const [sys, method] of methods) out.push(`- ${sys}: ${method}`);
    for (const p of r.restart) {
      if ((p.details ?? []).length > 0) out.push(`- ${TITLES[p.system]}, ${fmtNum(p.records ?? p.targetRecords)} records: ${p.details!.join("; ")}`);
    }
    out.push("");
  }

  const memRows = r.results.filter((x) => x.okRepeats > 0 && x.workload === (r.results.some((y) => y.workload === "write") ? "write" : x.workload));
  const memLines: string[] = [];
  for (const s of r.systems.filter((x) => x.status === "ok")) {
    const c = s.clientModel === "in-process" ? 1 : clients;
    const row = memRows.find((x) => x.system === s.name && x.clients === c) ?? memRows.find((x) => x.system === s.name);
    if (row === undefined || row.serverProcessPeaks.length === 0) continue;
    // Group identical processes (PostgreSQL's backends): "postgres: backend ×32, ≤ 17.4 MiB".
    const groups = new Map<string, { n: number; max: number }>();
    for (const p of row.serverProcessPeaks) {
      const g = groups.get(p.process) ?? { n: 0, max: 0 };
      groups.set(p.process, { n: g.n + 1, max: Math.max(g.max, p.peakRssBytes) });
    }
    const cells = [...groups].map(([name, g]) => (g.n === 1 ? `${name} ${fmtBytes(g.max)}` : `${name} ×${g.n} ≤ ${fmtBytes(g.max)}`));
    memLines.push(`| ${s.title} | ${row.workload} @${row.clients} | ${cells.join(", ")} |`);
  }
  if (memLines.length > 0) {
    out.push("## Peak memory by process", "");
    out.push("VmHWM of the largest server processes (at most 12 listed), reset at the start of the run. PostgreSQL's shared buffers count in every backend that touched them.", "");
    out.push("| system | run | processes |", "|---|---|---|", ...memLines, "");
  }

  out.push("## Method and caveats", "");
  out.push("- Every system runs on this one machine, in the same run; PostgreSQL and Borealis are servers reached over loopback TCP " +
    "through their users' client libraries, SQLite runs inside the load generator (no network, one connection: the single-node bound, drawn dashed).");
  out.push("- Load generators are separate processes; on a 2-core machine they still compete with the server for CPU, equally for every networked system. " +
    "Client CPU per op is reported so that cost is visible.");
  if (r.systems.some((s) => s.name === "borealis-hrana" && s.status === "ok")) {
    out.push("- Two Borealis rows, one server: \"Borealis\" is reached through @libsql/client (what applications use), \"Borealis (lean Hrana client)\" " +
      "through a minimal Hrana v2 client on node:http (bench/systems/hrana-client.ts) making the same round trips. @libsql/client costs ~2 ms of CPU " +
      "per operation in the client process, and here clients and servers share the cores: the gap between the two rows (and their client CPU/op) " +
      "is the client library's cost, and the lean row is closer to what the server itself can do.");
  }
  out.push("- Durability: PostgreSQL fsync=on, synchronous_commit=on; SQLite WAL with synchronous=FULL; Borealis acknowledges a commit once a " +
    "4-of-6 storage quorum has it on disk.");
  out.push("- Medians of repeats; `spread` is ±half the min–max range of the repeats relative to the median. Ratios divide medians.");
  out.push(`- Details: [bench/README.md](${readme}).`);
  out.push("");
  return { markdown: out.join("\n"), charts };
}

/** Writes results.json, report.md and charts/ into `dir` (replacing the charts of a previous run). */
export function writeReport(dir: string, r: ResultsFile, readme?: string): { json: string; markdown: string; charts: string[] } {
  mkdirSync(dir, { recursive: true });
  const chartDir = join(dir, "charts");
  mkdirSync(chartDir, { recursive: true });
  for (const f of readdirSync(chartDir)) if (f.endsWith(".svg")) rmSync(join(chartDir, f));
  const { markdown, charts } = renderMarkdown(r, readme);
  const json = join(dir, "results.json");
  writeFileSync(json, JSON.stringify(r, null, 1) + "\n");
  const md = join(dir, "report.md");
  writeFileSync(md, markdown);
  const written: string[] = [];
  for (const [name, svg] of charts) {
    writeFileSync(join(chartDir, name), svg);
    written.push(join(chartDir, name));
  }
  return { json, markdown: md, charts: written };
}
