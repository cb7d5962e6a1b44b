/**
 * A real Borealis cluster as separate OS processes — control plane, six storage nodes in AZs a, a, b,
 * b, c, c, and optionally the writer — driven from a test, a benchmark or the fault tooling
 * (`npm run faults`). Unlike `borealis up`, nothing restarts on its own: the caller kills (-9),
 * pauses (SIGSTOP), resumes and restarts each process by PID, so every fault is deliberate.
 *
 * Every process is this CLI's own `main.js` in a child process on 127.0.0.1; data lives in one
 * directory the cluster removes on `destroy()` unless asked to keep it. Only processes this driver
 * started are ever signalled.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import * as net from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { ControlPlaneClient } from "../control-plane/client.js";

export const MAIN_JS = fileURLToPath(new URL("../cli/main.js", import.meta.url));

export interface ProcessClusterOptions {
  /** Data directory; a new temporary one by default (removed by destroy()). */
  readonly dir?: string;
  /** Start the writer too (volume "default"). Default true. */
  readonly writer?: boolean;
  /** Pages per protection group of the volume the writer creates; small values spread a database over several PGs. */
  readonly pgPages?: number;
  readonly cacheMb?: number;
  readonly commitTimeoutMs?: number;
  /** Extra environment for every child (e.g. BOREALIS_LOG). */
  readonly env?: NodeJS.ProcessEnv;
  /** How long a process may take to print its ready line. Default 30 s. */
  readonly readyTimeoutMs?: number;
  /**
   * The address a storage node advertises to the control plane (`--advertise`), asked before every
   * start of the node; by default its own listen address. The fault tooling (src/faults/proxy.ts)
   * returns a TCP fault proxy's address here, so every connection to the node crosses the proxy.
   */
  readonly advertise?: (node: StorageProcess) => string | Promise<string>;
}

export type ProcessState = "running" | "paused" | "stopped";

export interface ClusterProcess {
  readonly name: string;
  readonly port: number;
  readonly dataDir: string;
  readonly logFile: string;
  pid: number | null;
  state: ProcessState;
}

export interface StorageProcess extends ClusterProcess {
  readonly az: string;
}

const AZS = ["a", "a", "b", "b", "c", "c"] as const;

export class ProcessCluster {
  readonly controlPlane: ClusterProcess;
  readonly nodes: StorageProcess[];
  readonly writer: ClusterProcess;
  readonly api: ControlPlaneClient;
  private readonly children = new Map<string, { child: ChildProcess; log: WriteStream }>();

  private constructor(readonly dir: string, private readonly ownsDir: boolean, basePort: number, private readonly options: ProcessClusterOptions) {
    const proc = (name: string, port: number, sub: string): ClusterProcess => ({
      name, port, dataDir: path.join(dir, sub), logFile: path.join(dir, "logs", `${name}.log`), pid: null, state: "stopped",
    });
    this.controlPlane = proc("control-plane", basePort, "control-plane");
    this.nodes = AZS.map((az, i) => ({ ...proc(`n${i + 1}`, basePort + 1 + i, path.join("nodes", `n${i + 1}`)), az }));
    this.writer = proc("writer", basePort + 7, "writer");
    this.api = new ControlPlaneClient(this.controlPlaneUrl);
  }

  get controlPlaneUrl(): string {
    return `http://127.0.0.1:${this.controlPlane.port}`;
  }

  get writerUrl(): string {
    return `http://127.0.0.1:${this.writer.port}`;
  }

  node(name: string): StorageProcess {
    const n = this.nodes.find((x) => x.name === name);
    if (n === undefined) throw new Error(`no storage node ${name}`);
    return n;
  }

  /** Starts the control plane and the six storage nodes, and the writer unless `writer: false`. */
  static async start(options: ProcessClusterOptions = {}): Promise<ProcessCluster> {
    const ownsDir = options.dir === undefined;
    const dir = options.dir ?? await mkdtemp(path.join(tmpdir(), "borealis-cluster-"));
    await mkdir(path.join(dir, "logs"), { recursive: true });
    const cluster = new ProcessCluster(dir, ownsDir, await freePortRange(8), options);
    try {
      await cluster.startControlPlane();
      await Promise.all(cluster.nodes.map((n) => cluster.startNode(n.name)));
      if (options.writer ?? true) await cluster.startWriter();
    } catch (e) {
      await cluster.destroy();
      throw e;
    }
    return cluster;
  }

  async startControlPlane(): Promise<void> {
    await this.launch(this.controlPlane, ["control-plane", "--data", this.controlPlane.dataDir, "--listen", `127.0.0.1:${this.controlPlane.port}`,
      "--heartbeat-timeout-ms", "2000"], /control plane ready/);
  }

  async startNode(name: string): Promise<void> {
    const n = this.node(name);
    const advertise = await this.options.advertise?.(n);
    await this.launch(n, ["storage-node", "--id", n.name, "--az", n.az, "--data", n.dataDir, "--listen", `127.0.0.1:${n.port}`,
      "--control-plane", this.controlPlaneUrl, ...(advertise !== undefined ? ["--advertise", advertise] : [])], /storage node \S+ .*ready on/);
  }

  /** Starts (or restarts) the writer; resolves once it serves, with how long that took in ms. */
  async startWriter(): Promise<number> {
    const started = performance.now();
    const o = this.options;
    await this.launch(this.writer, [
      "writer", "--control-plane", this.controlPlaneUrl, "--volume", "default", "--listen", `127.0.0.1:${this.writer.port}`,
      "--cache-mb", String(o.cacheMb ?? 64),
      ...(o.pgPages !== undefined ? ["--pg-pages", String(o.pgPages)] : []),
      ...(o.commitTimeoutMs !== undefined ? ["--commit-timeout-ms", String(o.commitTimeoutMs)] : []),
    ], /writer of volume \S+ ready on/);
    return performance.now() - started;
  }

  /** kill -9. */
  kill(p: ClusterProcess): Promise<void> {
    return this.signal(p, "SIGKILL");
  }

  /** SIGSTOP: the process keeps its sockets but answers nothing. */
  pause(p: ClusterProcess): void {
    if (p.pid === null || p.state !== "running") return;
    process.kill(p.pid, "SIGSTOP");
    p.state = "paused";
  }

  resume(p: ClusterProcess): void {
    if (p.pid === null || p.state !== "paused") return;
    process.kill(p.pid, "SIGCONT");
    p.state = "running";
  }

  /** SIGTERM and wait (the process closes cleanly); SIGKILL after `graceMs`. */
  async stop(p: ClusterProcess, graceMs = 10_000): Promise<void> {
    if (p.pid === null) return;
    if (p.state === "paused") this.resume(p);
    const done = this.exited(p);
    process.kill(p.pid, "SIGTERM");
    const timer = setTimeout(() => { if (p.pid !== null) process.kill(p.pid, "SIGKILL"); }, graceMs);
    await done;
    clearTimeout(timer);
  }

  /** Stops every process (kill -9: tests must not depend on a clean shutdown) and removes the data. */
  async destroy(options: { keepDir?: boolean } = {}): Promise<void> {
    await Promise.all([this.writer, ...this.nodes, this.controlPlane].map((p) => this.kill(p)));
    if (this.ownsDir && !options.keepDir) await rm(this.dir, { recursive: true, force: true });
  }

  /** The last lines of a process's log (for failure messages). */
  async logTail(p: ClusterProcess, lines = 20): Promise<string> {
    const { readFile } = await import("node:fs/promises");
    try {
      return (await readFile(p.logFile, "utf8")).trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  // ---------------------------------------------------------------------------------------------

  private async signal(p: ClusterProcess, signal: NodeJS.Signals): Promise<void> {
    if (p.pid === null) return;
    const done = this.exited(p);
    if (p.state === "paused" && signal !== "SIGKILL") this.resume(p);
    process.kill(p.pid, signal);
    await done;
  }

  private exited(p: ClusterProcess): Promise<void> {
    const entry = this.children.get(p.name);
    if (entry === undefined || entry.child.exitCode !== null || entry.child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => entry.child.once("exit", () => resolve()));
  }

  private async launch(p: ClusterProcess, args: string[], ready: RegExp): Promise<void> {
    if (p.pid !== null) throw new Error(`${p.name} is already running (pid ${p.pid})`);
    await mkdir(p.dataDir, { recursive: true });
    const log = createWriteStream(p.logFile, { flags: "a" });
    log.write(`--- ${new Date().toISOString()} ${args.join(" ")}\n`);
    const child = spawn(process.execPath, [MAIN_JS, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...this.options.env },
    });
    if (child.pid === undefined) throw new Error(`could not start ${p.name}`);
    p.pid = child.pid;
    p.state = "running";
    this.children.set(p.name, { child, log });
    child.on("exit", () => {
      if (p.pid === child.pid) {
        p.pid = null;
        p.state = "stopped";
      }
    });
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    const timeoutMs = this.options.readyTimeoutMs ?? 30_000;
    await new Promise<void>((resolve, reject) => {
      let seen = "";
      const timer = setTimeout(() => fail(new Error(`${p.name} not ready within ${timeoutMs} ms`)), timeoutMs);
      const onData = (b: Buffer) => {
        seen = (seen + b.toString()).slice(-4096);
        if (ready.test(seen)) finish();
      };
      const onExit = (code: number | null, sig: string | null) => fail(new Error(`${p.name} exited (${sig ?? code}) before it was ready`));
      const cleanup = () => {
        clearTimeout(timer);
        child.stdout!.off("data", onData);
        child.off("exit", onExit);
      };
      const finish = () => { cleanup(); resolve(); };
      const fail = (e: Error) => {
        cleanup();
        void this.logTail(p).then((tail) => reject(new Error(`${e.message}\n${tail}`)));
      };
      child.stdout!.on("data", onData);
      child.once("exit", onExit);
    });
  }
}

/** `count` consecutive loopback ports that were free a moment ago (bounded search). */
export async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const servers: net.Server[] = [];
    let ok = true;
    for (let i = 0; i < count && ok; i++) {
      const s = net.createServer();
      ok = await new Promise<boolean>((resolve) => {
        s.once("error", () => resolve(false));
        s.listen(base + i, "127.0.0.1", () => resolve(true));
      });
      if (ok) servers.push(s);
    }
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    if (ok) return base;
  }
  throw new Error("no free range of loopback ports found");
}
