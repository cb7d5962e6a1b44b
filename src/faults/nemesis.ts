/**
 * The nemesis: real faults against a `ProcessCluster`, one episode at a time, on a seeded schedule,
 * each healed before the next one starts, so the within-tolerance promise holds by construction:
 * never more than two storage nodes down, partitioned or paused at once (any two, sometimes both of
 * one AZ), the writer and the nodes never hit together.
 *
 * Episodes (`FaultKind`):
 * - kill:         kill -9 one or two storage nodes; restart them after the hold.
 * - pause:        SIGSTOP one or two storage nodes (sockets open, nothing answered); SIGCONT.
 * - writer:       kill -9 the writer, sometimes with one or two storage nodes; restart it (recovery:
 *                 new epoch, VDL from read quorums, annul), then the nodes (stale epochs, annulled late).
 * - writer-pause: SIGSTOP the writer; SIGCONT.
 * - corrupt:      kill -9 one or two nodes, flip bytes in its hot-log or page-store (LMDB) files, restart it.
 *                 Checksums must catch it (invariant 9); the node may lose what the bytes held — a
 *                 tolerated fault. A node that then cannot open its data is replaced by an empty one
 *                 (a new disk), which the writer re-opens and catches up.
 * - partition:    cut one or two nodes off through their fault proxies, both ways or one way.
 * - toxics:       latency with jitter (sometimes on all six nodes), 1–64-byte slices, a bandwidth
 *                 cap, or connection resets, on one or two nodes (or all six for latency).
 *
 *
 * Beyond tolerance (chosen explicitly, never by "all"): writes cannot reach a write quorum, so they
 * must stall and come back as `info`, and nothing acknowledged may be lost or changed:
 * - az-plus-one:    kill -9 both nodes of one AZ and one more (3 of 6 down; reads of durable data
 *                   still have a read quorum); restart them.
 * - isolate-writer: partition every node from the writer; heal.
 *
 * Every episode is written into the history as nemesis `info` events (start and end), so a checker's
 * report can be read against what the cluster was going through. Anything that goes wrong with the
 * faults themselves (a node that cannot be restarted after a plain kill -9) is a `problem`: the run
 * fails on it, because it is a bug in the system, not in the schedule.
 */
import { open, readdir, readFile, rm, stat } from "node:fs/promises";
import * as path from "node:path";
import type { ClusterProcess, ProcessCluster, StorageProcess } from "../testing/process-cluster.js";
import type { History } from "./history.js";
import type { FaultProxy, Toxic } from "./proxy.js";
import { errorText, sleep, type Rng } from "./workload.js";

/** Within tolerance: never more than two storage nodes down, cut off or paused at once. */
export const FAULT_KINDS = ["kill", "pause", "writer", "writer-pause", "corrupt", "partition", "toxics"] as const;
/** Beyond tolerance for writes (they must stall, never be acknowledged wrongly), never for safety. */
export const BEYOND_TOLERANCE_KINDS = ["az-plus-one", "isolate-writer"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number] | (typeof BEYOND_TOLERANCE_KINDS)[number];
/** Faults that need a fault proxy in front of every storage node. */
export const NETWORK_FAULTS: readonly FaultKind[] = ["partition", "toxics", "isolate-writer"];

export interface NemesisOptions {
  readonly cluster: ProcessCluster;
  /** Fault proxies by node name (required for partition and toxics). */
  readonly proxies?: ReadonlyMap<string, FaultProxy>;
  readonly faults: readonly FaultKind[];
  readonly rand: Rng;
  readonly history: History;
  /** Quiet time between episodes, ms [min, max]. */
  readonly intervalMs: readonly [number, number];
  /** How long a fault lasts, ms [min, max]. */
  readonly holdMs: readonly [number, number];
  readonly log?: (line: string) => void;
}

export interface NemesisEpisode {
  readonly kind: FaultKind;
  readonly targets: readonly string[];
  readonly startMs: number;
  durationMs: number;
  readonly detail: Record<string, unknown>;
}

export interface NemesisProblem {
  readonly kind: string;
  readonly message: string;
  readonly logTail?: string;
}

export class Nemesis {
  readonly episodes: NemesisEpisode[] = [];
  readonly problems: NemesisProblem[] = [];
  /** Corruption episodes: which file, whether the node noticed, whether it had to be replaced. */
  readonly corruptions: { node: string; file: string; flips: number; detected: boolean; replaced: boolean; evidence: string[] }[] = [];
  /** Writer restarts after kill -9: process start to serving, ms. */
  readonly writerRestartsMs: number[] = [];
  private readonly started = performance.now();
  private readonly log: (line: string) => void;

  constructor(private readonly o: NemesisOptions) {
    this.log = o.log ?? (() => {});
    if (o.faults.some((f) => NETWORK_FAULTS.includes(f)) && o.proxies === undefined) {
      throw new Error("partition and toxics faults need fault proxies in front of the storage nodes");
    }
  }

  /** Episodes until `deadline` (performance.now()) or `stopped()`; every fault is healed before it returns. */
  async run(deadline: number, stopped: () => boolean): Promise<void> {
    if (this.o.faults.length === 0) return;
    const { rand } = this.o;
    // Every chosen fault once (in a random order) before random picks: short runs still see each one.
    const firstRound = rand.sample(this.o.faults, this.o.faults.length);
    while (!stopped()) {
      const quiet = between(rand, this.o.intervalMs);
      if (performance.now() + quiet >= deadline) break;
      await sleep(quiet);
      if (stopped()) break;
      const kind = firstRound.shift() ?? rand.pick(this.o.faults);
      try {
        await this.episode(kind, Math.min(between(rand, this.o.holdMs), Math.max(0, deadline - performance.now())));
      } catch (e) {
        this.problems.push({ kind, message: `episode failed: ${errorText(e)}` });
        this.log(`nemesis: ${kind} episode failed: ${errorText(e)}`);
        await this.healAll();
      }
    }
  }

  /** Heals everything: toxics cleared, processes resumed, stopped nodes and the writer started. */
  async healAll(): Promise<void> {
    const c = this.o.cluster;
    for (const p of this.o.proxies?.values() ?? []) p.clear();
    for (const p of [...c.nodes, c.writer]) c.resume(p);
    for (const n of c.nodes) if (n.state === "stopped") await this.restartNode(n, "heal");
    if (c.writer.state === "stopped") await this.restartWriter("heal");
  }

  private async episode(kind: FaultKind, holdMs: number): Promise<void> {
    const c = this.o.cluster;
    const { rand, history } = this.o;
    const begin = (targets: string[], detail: Record<string, unknown> = {}): NemesisEpisode => {
      const ep: NemesisEpisode = { kind, targets, startMs: Math.round(performance.now() - this.started), durationMs: 0, detail };
      this.episodes.push(ep);
      history.nemesis(`start-${kind}`, { targets, ...detail });
      this.log(`nemesis: ${kind} ${targets.join(",")} ${Object.keys(detail).length > 0 ? JSON.stringify(detail) : ""}`.trimEnd());
      return ep;
    };
    const end = (ep: NemesisEpisode): void => {
      ep.durationMs = Math.round(performance.now() - this.started - ep.startMs);
      history.nemesis(`end-${kind}`, { targets: ep.targets });
    };
    /** kill -9 these nodes at once, hold, restart them one by one. */
    const killHoldRestart = async (nodes: readonly StorageProcess[]): Promise<void> => {
      const ep = begin(nodes.map((n) => n.name));
      await Promise.all(nodes.map((n) => c.kill(n)));
      await sleep(holdMs);
      for (const n of nodes) await this.restartNode(n, "kill");
      end(ep);
    };

    switch (kind) {
      case "kill":
        return killHoldRestart(this.pickNodes());
      case "pause": {
        const nodes = this.pickNodes();
        const ep = begin(nodes.map((n) => n.name));
        for (const n of nodes) c.pause(n);
        await sleep(holdMs);
        for (const n of nodes) c.resume(n);
        end(ep);
        return;
      }
      case "writer": {
        // Sometimes one or two storage nodes go down with the writer: recovery then runs on the
        // remaining write quorum, and the nodes come back with an old epoch and must be annulled.
        const nodes = rand.next() < 0.4 ? this.pickNodes() : [];
        const ep = begin(["writer", ...nodes.map((n) => n.name)]);
        await Promise.all([c.kill(c.writer), ...nodes.map((n) => c.kill(n))]);
        await sleep(rand.int(Math.min(holdMs, 1000)));
        await this.restartWriter("kill");
        for (const n of nodes) await this.restartNode(n, "kill");
        end(ep);
        return;
      }
      case "writer-pause": {
        // Sometimes longer than the clients' timeouts and the endpoint's 10 s stream expiry: clients
        // give up (info) while their transactions sit in a frozen process that later wakes up.
        const long = rand.next() < 0.3;
        const ep = begin(["writer"], long ? { long } : {});
        c.pause(c.writer);
        await sleep(long ? holdMs * 3 + 5000 : holdMs);
        c.resume(c.writer);
        end(ep);
        return;
      }
      case "corrupt": {
        // One node, or two (at most two replicas of any segment: test plan §13).
        const nodes = rand.next() < 0.6 ? [rand.pick(c.nodes)] : rand.sample(c.nodes, 2);
        await Promise.all(nodes.map((n) => c.kill(n)));
        const targets = [];
        for (const n of nodes) targets.push(await this.flipBytes(n));
        const ep = begin(nodes.map((n) => n.name), { files: targets.map((t) => (t === undefined ? "none (no data yet)" : `${t.file} (${t.offsets.length} flips)`)) });
        await sleep(Math.min(holdMs, 1000));
        for (const [i, node] of nodes.entries()) {
          const target = targets[i];
          const logBefore = await fileSize(node.logFile);
          const replaced = await this.restartNode(node, "corrupt");
          if (target === undefined) continue;
          // Give the node a moment to read what it holds (replay is at open; LMDB values are read on use).
          await sleep(500);
          const evidence = await this.detectionEvidence(node, logBefore);
          this.corruptions.push({ node: node.name, file: target.file, flips: target.offsets.length, detected: evidence.length > 0 || replaced, replaced, evidence });
        }
        end(ep);
        return;
      }
      case "partition": {
        const nodes = this.pickNodes();
        const direction = rand.next() < 0.7 ? "both" : rand.pick(["upstream", "downstream"] as const);
        const ep = begin(nodes.map((n) => n.name), { direction });
        for (const n of nodes) this.proxy(n).setToxics([{ kind: "partition", direction }]);
        await sleep(holdMs);
        for (const n of nodes) this.proxy(n).clear();
        end(ep);
        return;
      }
      case "az-plus-one": {
        const az = rand.pick([...new Set(c.nodes.map((n) => n.az))]);
        const inAz = c.nodes.filter((n) => n.az === az);
        return killHoldRestart([...inAz, rand.pick(c.nodes.filter((n) => n.az !== az))]);
      }
      case "isolate-writer": {
        const ep = begin(c.nodes.map((n) => n.name), { direction: "both" });
        for (const n of c.nodes) this.proxy(n).setToxics([{ kind: "partition" }]);
        await sleep(holdMs);
        for (const n of c.nodes) this.proxy(n).clear();
        end(ep);
        return;
      }
      case "toxics": {
        const roll = rand.next();
        let toxic: Toxic;
        if (roll < 0.35) toxic = { kind: "latency", ms: 5 + rand.int(150), jitterMs: rand.int(50) };
        else if (roll < 0.6) toxic = { kind: "slicer", bytes: 1 + rand.int(64), delayMs: rand.int(2) };
        else if (roll < 0.8) toxic = { kind: "bandwidth", bytesPerSecond: 20_000 + rand.int(500_000) };
        else toxic = { kind: "reset" };
        // Latency on every node is slow but within tolerance; the others hit one or two nodes.
        const nodes = toxic.kind === "latency" && rand.next() < 0.3 ? [...c.nodes] : this.pickNodes();
        const ep = begin(nodes.map((n) => n.name), { ...toxic });
        for (const n of nodes) this.proxy(n).setToxics([toxic]);
        await sleep(holdMs);
        for (const n of nodes) this.proxy(n).clear();
        end(ep);
        return;
      }
    }
  }

  /** One node (30%), two random nodes (40%) or both nodes of one AZ (30%). */
  private pickNodes(): StorageProcess[] {
    const { rand } = this.o;
    const nodes = this.o.cluster.nodes;
    const roll = rand.next();
    if (roll < 0.3) return [rand.pick(nodes)];
    if (roll < 0.7) return rand.sample(nodes, 2);
    const az = rand.pick([...new Set(nodes.map((n) => n.az))]);
    return nodes.filter((n) => n.az === az);
  }

  private proxy(n: StorageProcess): FaultProxy {
    const p = this.o.proxies?.get(n.name);
    if (p === undefined) throw new Error(`no fault proxy for ${n.name}`);
    return p;
  }

  /**
   * Restarts a storage node. A node that will not start after corruption is replaced by an empty one
   * (returns true); a node that will not start after a plain kill -9 is a problem.
   */
  private async restartNode(n: StorageProcess, why: string): Promise<boolean> {
    const c = this.o.cluster;
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await c.startNode(n.name);
        return false;
      } catch (e) {
        lastError = e;
        await c.kill(n); // it may still be running without having become ready
        if (why === "corrupt") break;
        await sleep(500);
      }
    }
    const tail = await c.logTail(n, 15);
    if (why !== "corrupt") {
      this.problems.push({ kind: "node-restart", message: `${n.name} did not restart after ${why}: ${errorText(lastError)}`, logTail: tail });
    }
    this.log(`nemesis: ${n.name} did not start (${why}); replacing its disk with an empty one`);
    this.o.history.nemesis("replace-node", { node: n.name, reason: errorText(lastError) });
    await rm(n.dataDir, { recursive: true, force: true });
    try {
      await c.startNode(n.name);
    } catch (e) {
      this.problems.push({ kind: "node-replace", message: `${n.name} did not start on an empty disk: ${errorText(e)}`, logTail: await c.logTail(n, 15) });
    }
    return true;
  }

  private async restartWriter(why: string): Promise<void> {
    const c = this.o.cluster;
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const ms = await c.startWriter();
        if (why === "kill") this.writerRestartsMs.push(Math.round(ms));
        return;
      } catch (e) {
        lastError = e;
        // A writer that never printed its ready line may still be running: stop it before retrying.
        await c.kill(c.writer);
        await sleep(1000);
      }
    }
    this.problems.push({ kind: "writer-restart", message: `the writer did not restart after ${why}: ${errorText(lastError)}`, logTail: await c.logTail(c.writer, 15) });
  }

  /** Flips 1–8 bytes in one of the node's hot-log files (past the header, mostly) or its LMDB file. */
  private async flipBytes(n: StorageProcess): Promise<{ file: string; offsets: number[] } | undefined> {
    const { rand } = this.o;
    const candidates: { file: string; size: number; skip: number }[] = [];
    for (const [sub, pattern, skip] of [["log", /\.hlog$/, 128], ["pages", /^data\.mdb$/, 0]] as const) {
      const dir = path.join(n.dataDir, sub);
      let names: string[] = [];
      try {
        names = await readdir(dir);
      } catch {
        continue;
      }
      for (const name of names.filter((x) => pattern.test(x))) {
        const size = (await stat(path.join(dir, name))).size;
        if (size > skip) candidates.push({ file: path.join(dir, name), size, skip });
      }
    }
    if (candidates.length === 0) return undefined;
    const logs = candidates.filter((x) => x.file.endsWith(".hlog"));
    const target = logs.length > 0 && rand.next() < 0.6 ? rand.pick(logs) : rand.pick(candidates);
    const flips = 1 + rand.int(8);
    const offsets: number[] = [];
    const fh = await open(target.file, "r+");
    try {
      for (let i = 0; i < flips; i++) {
        const off = target.skip + rand.int(target.size - target.skip);
        const b = Buffer.alloc(1);
        await fh.read(b, 0, 1, off);
        b[0] = b[0]! ^ (1 + rand.int(255));
        await fh.write(b, 0, 1, off);
        offsets.push(off);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    return { file: path.relative(n.dataDir, target.file), offsets };
  }

  /** Log lines since `from` in which the node reports corruption it found. */
  private async detectionEvidence(n: ClusterProcess, from: number): Promise<string[]> {
    try {
      const text = (await readFile(n.logFile)).subarray(from).toString("utf8");
      // The node's own words for it: hot-log replay events, a store value failing its checksum, a
      // segment's metadata unreadable, the store's structure check at open, a page whose record
      // chain is broken, or the replay report counting corrupt entries.
      const signs = /CORRUPT_DATA|hot-log-corrupt|hot-log-invalid|hot-log-torn|metadata-corrupt|page-store-corrupt|page-chain-broken|checksum mismatch|"corruptEntries":[1-9]/;
      return text.split("\n").filter((l) => signs.test(l)).slice(0, 5).map((l) => l.slice(0, 300));
    } catch {
      return [];
    }
  }
}

function between(rand: Rng, [min, max]: readonly [number, number]): number {
  return min + rand.int(Math.max(1, max - min));
}

async function fileSize(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch {
    return 0;
  }
}
