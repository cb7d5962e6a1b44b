/**
 * Resource accounting from Linux's /proc: CPU time and peak memory, for a set of process trees (a server and every process it started: PostgreSQL's backends, Borealis's storage
 * nodes, the load generators).
 *
 * CPU of a tree = Σ over its live processes of utime + stime + cutime + cstime. The c-fields hold the
 * time of children that have exited and been reaped, so a backend that ends inside the measured
 * window still counts: at the start its own time is counted, at the end the same time sits in its
 * parent's cutime. The difference of two snapshots is the tree's CPU in the window.
 *
 * Peak memory is VmHWM (the resident high-water mark). The harness resets it at the start of a run by
 * writing "5" to /proc/PID/clear_refs (allowed for our own processes and for root), so a peak is the
 * run's, not the process's lifetime.
 *
 * Not measured here: bytes written to disk. /proc/PID/io `write_bytes` would be the figure, but on
 * the bench VM's kernel one 8 KiB pwrite + fdatasync is accounted as 2 MiB (checked with a 10-line
 * script), so it would mislead; log bytes come from each system's own counters instead.
 *
 * Everything is best effort: a process may exit between listing and reading, and a field that cannot
 * be read is left out rather than guessed.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";

let ticksPerSecond: number | undefined;

/** The kernel's clock tick (USER_HZ) that /proc/PID/stat counts in; 100 on every Linux we run on. */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

interface StatLine {
  readonly pid: number;
  readonly comm: string;
  readonly ppid: number;
  readonly ticks: number; // utime + stime + cutime + cstime
}

function readStat(pid: number): StatLine | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // comm is in parentheses and may itself contain spaces or ')': split after the last ')'.
  const close = text.lastIndexOf(")");
  const comm = text.slice(text.indexOf("(") + 1, close);
  const fields = text.slice(close + 2).split(" ");
  // fields[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
  const ppid = Number(fields[1]);
  const ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  if (!Number.isFinite(ppid) || !Number.isFinite(ticks)) return null;
  return { pid, comm, ppid, ticks };
}

/** Every PID in the trees rooted at `roots` (roots included), from one scan of /proc. */
export function processTree(roots: readonly number[]): StatLine[] {
  const all = new Map<number, StatLine>();
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const st = readStat(pid);
    if (st === null) continue;
    all.set(pid, st);
    const list = children.get(st.ppid);
    if (list === undefined) children.set(st.ppid, [pid]);
    else list.push(pid);
  }
  const out: StatLine[] = [];
  const seen = new Set<number>();
  const queue = roots.filter((p) => all.has(p));
  // Bounded: each PID is visited once and /proc lists finitely many.
  while (queue.length > 0) {
    const pid = queue.shift()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    out.push(all.get(pid)!);
    for (const c of children.get(pid) ?? []) queue.push(c);
  }
  return out;
}

function statusKb(pid: number, field: string): number | null {
  try {
    const text = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}

export interface ProcessPeak {
  readonly pid: number;
  /** The command name; for Node processes, the script and its first argument ("node main.js writer"). */
  readonly comm: string;
  readonly peakRssBytes: number;
}

export interface TreeSnapshot {
  /** CPU time of the tree so far, microseconds. */
  readonly cpuUs: number;
  readonly processes: number;
}

export function snapshotTree(roots: readonly number[]): TreeSnapshot {
  const tree = processTree(roots);
  let ticks = 0;
  for (const p of tree) ticks += p.ticks;
  return { cpuUs: (ticks * 1_000_000) / clockTicksPerSecond(), processes: tree.length };
}

function label(p: StatLine): string {
  if (p.comm !== "node" && p.comm !== "postgres") return p.comm;
  try {
    const argv = readFileSync(`/proc/${p.pid}/cmdline`, "utf8").split("\0").filter((a) => a.length > 0);
    if (p.comm === "postgres") {
      // PostgreSQL retitles its processes: "postgres: checkpointer", "postgres: user db 127.0.0.1(port) idle".
      const title = argv[0] ?? "postgres";
      if (!title.startsWith("postgres: ")) return "postgres (postmaster)";
      return /\d+\.\d+\.\d+\.\d+\(\d+\)|\[local\]/.test(title) ? "postgres: backend" : title.replace(/\s+$/, "");
    }
    const script = argv.findIndex((a, i) => i > 0 && !a.startsWith("-"));
    if (script < 0) return "node";
    const name = argv[script]!.split("/").pop()!;
    const sub = argv[script + 1];
    return sub !== undefined && !sub.startsWith("-") && !sub.includes("/") ? `node ${name} ${sub}` : `node ${name}`;
  } catch {
    return "node";
  }
}

/** VmHWM of each process of the trees, largest first. */
export function peakMemory(roots: readonly number[]): ProcessPeak[] {
  const out: ProcessPeak[] = [];
  for (const p of processTree(roots)) {
    const kb = statusKb(p.pid, "VmHWM");
    if (kb !== null) out.push({ pid: p.pid, comm: label(p), peakRssBytes: kb * 1024 });
  }
  return out.sort((a, b) => b.peakRssBytes - a.peakRssBytes);
}

/** Resets the resident high-water mark of every process of the trees (best effort). */
export function resetPeakMemory(roots: readonly number[]): void {
  for (const p of processTree(roots)) {
    try {
      writeFileSync(`/proc/${p.pid}/clear_refs`, "5");
    } catch {
      // Not ours and not root, or already gone: its peak stays the lifetime peak.
    }
  }
}

/** True while a process with this PID exists (it may be a zombie). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Waits until `pid` no longer exists; false if it is still there after `timeoutMs`. */
export async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (processExists(pid) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  return !processExists(pid);
}
