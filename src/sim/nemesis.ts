/**
 * The nemesis: the faults of a run, all drawn from the seed (Jepsen's nemesis, FoundationDB's
 * attrition and swizzle-clogging, TigerBeetle's VOPR). Each step it heals the faults whose time is up,
 * restarts a writer if the cluster has none (a supervisor would), and may inject one new fault.
 *
 * Fault model (docs/simulator.md):
 * - storage nodes: kill -9 with or without power loss (unsynced writes lost or torn), both nodes of an
 *   AZ at once, partitions (a node from everyone; a writer from a node), chaos links (drop, duplicate,
 *   reorder chunks of the byte stream), slow links, fsync and write errors (the node fences itself),
 *   a full disk, a failed page-store commit, bit flips at rest in a stopped node's hot log or page
 *   store;
 * - writers: kill -9 (a new writer recovers), kill during recovery, a takeover while the old writer
 *   keeps running (a stale-epoch writer), a writer isolated from everything while its successor
 *   recovers, a writer cut off from the control plane.
 *
 * Within tolerance (the default): a fault touching storage nodes is injected only if, with it, at most
 * 2 nodes are faulty — every PG has a segment on every node, so that is at most 2 faulty segments per
 * PG, where invariant 12 promises no loss. A node counts as faulty while it is down, starting,
 * fenced, partitioned or on a chaos link, corrupted, or behind its PG's write quorum (it has not
 * caught up since it came back).
 *
 * Beyond tolerance (`mode: "beyond"`): one outage of 3 nodes (an AZ plus one); the checker then holds
 * every writer's VDL frozen — the system must be unavailable, never wrong — reads must still work
 * (AZ+1), and a writer that tries to recover meanwhile must fail.
 */
import { PgId } from "../core/types.js";
import { isBorealisError } from "../core/errors.js";
import type { LinkConfig } from "./sim-network.js";
import { calmLink } from "./sim-network.js";
import { calmDisk } from "./sim-disk.js";
import type { MemoryPageStore } from "../storage/page-store.js";
import { CP_HOST, VOLUME_ID, WRITER_HOSTS, type SimCluster, type SimNode, type SimWriter } from "./cluster.js";
import type { Checker } from "./checker.js";
import type { SeededRandom } from "./random.js";
import type { SimWorld } from "./world.js";

export type NemesisMode = "calm" | "tolerant" | "beyond";

export const FAULT_KINDS = [
  "crash", "az", "partition-node", "partition-writer-node", "chaos", "slow", "disk-error", "disk-full", "store-error",
  "bitflip-hotlog", "bitflip-store", "kill-writer", "takeover", "isolate-writer", "partition-writer-cp",
  "kill-in-recovery", "dueling-writers", "crash-in-start", "crash-control-plane", "orphan-records",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface NemesisPlan {
  readonly mode: NemesisMode;
  /** Probability of injecting a fault at a step. */
  readonly actRate: number;
  /** Relative weights of the fault kinds this run uses (swarm testing: each seed enables a subset). */
  readonly weights: Partial<Record<FaultKind, number>>;
  /** Fault durations, uniform in [min, max] ms. */
  readonly durationMs: readonly [number, number];
  /** The step at which a beyond-tolerance outage starts, and how long it holds. */
  readonly outageStep: number;
  readonly outageMs: number;
}

/** Draws a plan from the seed: which faults, how often, how long. */
export function drawPlan(random: SeededRandom, steps: number, forced?: NemesisMode, only?: readonly FaultKind[]): NemesisPlan {
  const r = random.float();
  const mode: NemesisMode = forced ?? (r < 0.08 ? "calm" : r < 0.2 ? "beyond" : "tolerant");
  const weights: Partial<Record<FaultKind, number>> = {};
  // Every kind with probability 0.6, at a random weight; at least the crash. `only` narrows the
  // choice to some kinds (a targeted run); the draws are the same either way.
  for (const k of FAULT_KINDS) {
    const on = random.chance(0.6);
    const weight = 1 + random.int(4);
    if (only !== undefined ? only.includes(k) : on) weights[k] = weight;
  }
  if (only === undefined) weights.crash ??= 2;
  return {
    mode,
    actRate: 0.15 + random.float() * 0.5,
    weights,
    durationMs: [50 + random.int(200), 500 + random.int(3500)],
    outageStep: Math.floor(steps / 4) + random.int(Math.max(1, Math.floor(steps / 3))),
    outageMs: 2000 + random.int(2000),
  };
}

interface ActiveFault {
  readonly kind: FaultKind | "outage";
  /** Storage nodes this fault makes faulty until healed. */
  readonly nodes: readonly string[];
  readonly until: number;
  heal(): Promise<void> | void;
}

const chaosLink = (random: SeededRandom): LinkConfig => ({
  latencyMs: [0.05, 0.5 + random.float() * 3],
  dropRate: 0.01 + random.float() * 0.1,
  duplicateRate: random.float() * 0.1,
  reorderRate: random.float() * 0.2,
});

export class Nemesis {
  private active: ActiveFault[] = [];
  private partitions: { readonly id: number; readonly a: readonly string[]; readonly b: readonly string[] }[] = [];
  private nextPartitionId = 0;
  private writerRestartAt: number | undefined;
  /** Nodes corrupted at rest whose corruption nothing repairs (a page-store bit flip): faulty for good. */
  readonly permanentlyFaulty = new Set<string>();
  injected: Partial<Record<FaultKind | "outage", number>> = {};
  private outageDone = false;
  outageReadsOk = 0;
  outageReadsFailed = 0;

  constructor(
    private readonly world: SimWorld,
    private readonly cluster: SimCluster,
    private readonly checker: Checker,
    private readonly random: SeededRandom,
    readonly plan: NemesisPlan,
  ) {}

  private get now(): number {
    return this.world.scheduler.now();
  }

  private trace(event: string, fields: Record<string, unknown> = {}): void {
    this.world.trace(`nemesis.${event}`, fields);
  }

  // ------------------------------------------------------------------------------------------- step

  async step(step: number): Promise<void> {
    for (const f of [...this.active]) {
      if (f.until <= this.now) {
        this.active = this.active.filter((x) => x !== f);
        this.trace("heal", { kind: f.kind, nodes: f.nodes });
        await f.heal();
      }
    }
    this.superviseWriters();
    if (this.plan.mode === "calm") return;
    if (this.plan.mode === "beyond") {
      if (!this.outageDone && step >= this.plan.outageStep && this.active.length === 0 && (await this.faultyNodes()).size === 0) await this.outage();
      return;
    }
    if (!this.random.chance(this.plan.actRate)) return;
    const kinds = Object.entries(this.plan.weights) as [FaultKind, number][];
    let total = 0;
    for (const [, wgt] of kinds) total += wgt;
    let pick = this.random.float() * total;
    let kind: FaultKind = kinds[0]![0];
    for (const [k, wgt] of kinds) {
      pick -= wgt;
      if (pick < 0) { kind = k; break; }
    }
    await this.inject(kind);
  }

  /** A supervisor: when no writer is recovering or serving, start one after a short delay. */
  private superviseWriters(): void {
    if (this.cluster.writers.some((w) => w.active && w.process.alive)) {
      this.writerRestartAt = undefined;
      return;
    }
    if (this.writerRestartAt === undefined) {
      this.writerRestartAt = this.now + 20 + this.random.int(400);
      return;
    }
    if (this.now < this.writerRestartAt) return;
    this.writerRestartAt = undefined;
    this.startWriterSomewhere();
  }

  /** Starts a writer on a host that runs no live writer (killing the oldest one if both do). */
  startWriterSomewhere(): SimWriter {
    let host = WRITER_HOSTS.find((h) => !this.cluster.liveWriters().some((w) => w.host === h && w.active));
    host ??= this.random.pick(WRITER_HOSTS);
    const w = this.cluster.startWriter(host);
    this.trace("writer-started", { writer: w.name });
    return w;
  }

  /**
   * A fault's later action (a kill, a lifted partition). The final heal cancels those still pending:
   * a fault that outlives it would strike during the final phase, which must run on a healed cluster.
   */
  private at(delayMs: number, fn: () => void): void {
    const timer = this.world.scheduler.at(delayMs, () => {
      this.pendingActions.delete(timer);
      fn();
    });
    this.pendingActions.add(timer);
  }

  private readonly pendingActions = new Set<{ cancel(): void }>();

  private duration(): number {
    const [lo, hi] = this.plan.durationMs;
    return lo + this.random.int(hi - lo + 1);
  }

  // ------------------------------------------------------------------------------------- budget

  /** Nodes that count against the 2-faulty-segments budget right now. */
  async faultyNodes(): Promise<Set<string>> {
    const faulty = new Set<string>(this.permanentlyFaulty);
    for (const f of this.active) for (const n of f.nodes) faulty.add(n);
    for (const n of this.cluster.nodes) if (n.phase !== "up" || n.fenced) faulty.add(n.id);
    // Behind: not yet holding everything its PG's write quorum holds (4th highest SCL of six).
    const byPg = await this.cluster.sclsByPg();
    for (const [, scls] of byPg) {
      const values = this.cluster.nodes.map((n) => scls.get(n.id) ?? -1).sort((a, b) => b - a);
      const quorumPoint = values[3]!;
      for (const n of this.cluster.nodes) if ((scls.get(n.id) ?? -1) < quorumPoint) faulty.add(n.id);
    }
    return faulty;
  }

  /**
   * Liveness during the run: a node that is up, unfenced and free of every fault must catch up with
   * its PGs' write quorum within `stuckMs` while a writer serves — repair that never finishes leaves
   * a PG on fewer copies for good, and the next fault then costs availability (or more).
   */
  async checkProgress(stuckMs = 6000): Promise<void> {
    // The newest serving writer: its shippers are the ones that must catch nodes up (an older one may
    // still run, isolated or not yet fenced, and ship nothing).
    const serving = [...this.cluster.writers].reverse().find((w) => w.phase === "serving" && w.process.alive && !w.fenced);
    const now = this.now;
    if (serving === undefined || this.plan.mode === "beyond") {
      this.behindSince.clear();
      return;
    }
    const inFault = new Set<string>(this.permanentlyFaulty);
    for (const f of this.active) for (const n of f.nodes) inFault.add(n);
    const byPg = await this.cluster.sclsByPg();
    for (const n of this.cluster.nodes) {
      const eligible = n.phase === "up" && !n.fenced && !inFault.has(n.id);
      let behind = false;
      for (const [, scls] of byPg) {
        const values = this.cluster.nodes.map((x) => scls.get(x.id) ?? -1).sort((a, b) => b - a);
        if ((scls.get(n.id) ?? -1) < values[3]!) behind = true;
      }
      if (!eligible || !behind) {
        this.behindSince.delete(n.id);
        continue;
      }
      const since = Math.max(this.behindSince.get(n.id) ?? now, serving.startedAtMs);
      this.behindSince.set(n.id, since);
      if (now - since > stuckMs) {
        const detail = [...byPg].map(([pg, scls]) => `PG ${pg}: ${this.cluster.nodes.map((x) => `${x.id}=${scls.get(x.id) ?? "-"}`).join(" ")}`).join("; ");
        this.checker.fail("liveness", `${n.id} is up and fault-free but has not caught up with its write quorum for ${Math.round(now - since)} ms while ${serving.name} serves (${detail})`);
        this.behindSince.clear();
        return;
      }
    }
  }

  private readonly behindSince = new Map<string, number>();

  private async allowed(nodes: readonly string[]): Promise<boolean> {
    const faulty = await this.faultyNodes();
    for (const n of nodes) faulty.add(n);
    return faulty.size <= 2;
  }

  private healthyNodes(faulty: ReadonlySet<string>): SimNode[] {
    return this.cluster.nodes.filter((n) => !faulty.has(n.id));
  }

  // ------------------------------------------------------------------------------------ faults

  private async inject(kind: FaultKind): Promise<void> {
    const faulty = await this.faultyNodes();
    const candidates = this.healthyNodes(faulty);
    const pickNode = (): SimNode | undefined => (candidates.length === 0 ? undefined : this.random.pick(candidates));
    const until = this.now + this.duration();
    const writer = this.cluster.currentWriter;
    const done = (f: ActiveFault, fields: Record<string, unknown> = {}): void => {
      this.active.push(f);
      this.injected[f.kind] = (this.injected[f.kind] ?? 0) + 1;
      this.trace("inject", { kind: f.kind, nodes: f.nodes, until: f.until, ...fields });
    };
    switch (kind) {
      case "crash": {
        const n = pickNode();
        if (n === undefined || !(await this.allowed([n.id]))) return;
        const crashDisk = this.random.chance(0.8);
        await this.cluster.killNode(n, crashDisk);
        done({ kind, nodes: [n.id], until, heal: () => this.cluster.startNode(n) }, { crashDisk });
        return;
      }
      case "az": {
        const az = this.random.pick(["a", "b", "c"]);
        const nodes = this.cluster.nodes.filter((n) => n.az === az);
        if (!(await this.allowed(nodes.map((n) => n.id)))) return;
        for (const n of nodes) await this.cluster.killNode(n, this.random.chance(0.8));
        done({ kind, nodes: nodes.map((n) => n.id), until, heal: () => { for (const n of nodes) this.cluster.startNode(n); } }, { az });
        return;
      }
      case "partition-node": {
        const n = pickNode();
        if (n === undefined || !(await this.allowed([n.id]))) return;
        const others = [...this.cluster.nodes.filter((x) => x !== n).map((x) => x.host), CP_HOST, ...WRITER_HOSTS];
        const id = this.partition([n.host], others);
        done({ kind, nodes: [n.id], until, heal: () => this.unpartition(id) });
        return;
      }
      case "partition-writer-node": {
        const n = pickNode();
        if (n === undefined || writer === undefined || !(await this.allowed([n.id]))) return;
        const id = this.partition([writer.host], [n.host]);
        done({ kind, nodes: [n.id], until, heal: () => this.unpartition(id) }, { writer: writer.name });
        return;
      }
      case "chaos":
      case "slow": {
        const n = pickNode();
        if (n === undefined) return;
        if (kind === "chaos" && !(await this.allowed([n.id]))) return;
        const link: LinkConfig = kind === "chaos" ? chaosLink(this.random) : { ...calmLink, latencyMs: [0.5, 2 + this.random.int(40)] };
        for (const h of WRITER_HOSTS) this.world.network.setLink(h, n.host, link);
        done({
          kind, nodes: kind === "chaos" ? [n.id] : [], until,
          heal: () => { for (const h of WRITER_HOSTS) this.world.network.setLink(h, n.host, calmLink); },
        }, { link });
        return;
      }
      case "disk-error": {
        const n = pickNode();
        if (n === undefined || n.phase !== "up" || !(await this.allowed([n.id]))) return;
        const which = this.random.chance(0.6) ? "syncErrorRate" : "writeErrorRate";
        n.process.disk.faults = { ...n.process.disk.faults, [which]: 0.3 + this.random.float() * 0.7 };
        done({ kind, nodes: [n.id], until, heal: () => this.repairDisk(n) }, { which });
        return;
      }
      case "disk-full": {
        const n = pickNode();
        if (n === undefined || n.phase !== "up" || !(await this.allowed([n.id]))) return;
        const disk = n.process.disk;
        disk.faults = { ...disk.faults, capacityBytes: disk.usedBytes() + this.random.int(8192) };
        done({ kind, nodes: [n.id], until, heal: () => this.repairDisk(n) });
        return;
      }
      case "store-error": {
        const n = pickNode();
        if (n === undefined || n.phase !== "up" || n.node === undefined || !(await this.allowed([n.id]))) return;
        (n.node.store as MemoryPageStore).failNextCommits(1);
        done({ kind, nodes: [n.id], until, heal: () => this.repairDisk(n) });
        return;
      }
      case "bitflip-hotlog": {
        const n = pickNode();
        if (n === undefined || !(await this.allowed([n.id]))) return;
        await this.cluster.killNode(n, this.random.chance(0.5));
        const files = n.process.disk.paths().filter((p) => p.startsWith("/data/log/"));
        if (files.length > 0) {
          const file = this.random.pick(files);
          const flips = 1 + this.random.int(3);
          n.process.disk.flipBits(file, flips);
          n.skipDurabilityCheck = true; // the flipped entry is lost on replay; the writer re-replicates it
          this.trace("bitflip", { node: n.id, file, flips });
        }
        done({ kind, nodes: [n.id], until, heal: () => this.cluster.startNode(n) });
        return;
      }
      case "bitflip-store": {
        // Nothing repairs a corrupt page-store value yet (scrubbing is roadmap 3): the segment stays
        // faulty for the rest of the run, so at most one node per run, and only with room for it.
        if (this.permanentlyFaulty.size > 0) return;
        const n = pickNode();
        if (n === undefined || !(await this.allowed([n.id]))) return;
        await this.cluster.killNode(n, this.random.chance(0.5));
        const flipped = await this.flipStore(n);
        if (flipped !== undefined) {
          this.permanentlyFaulty.add(n.id);
          this.checker.corruptNodes.add(n.id);
          n.skipDurabilityCheck = true;
        }
        done({ kind, nodes: [n.id], until, heal: () => this.cluster.startNode(n) }, { flipped: flipped ?? "nothing stored" });
        return;
      }
      case "kill-writer": {
        const w = this.cluster.liveWriters().find((x) => x.active);
        if (w === undefined) return;
        this.cluster.killWriter(w);
        this.injected[kind] = (this.injected[kind] ?? 0) + 1;
        this.trace("inject", { kind, writer: w.name, phase: w.phase });
        return;
      }
      case "takeover":
      case "isolate-writer": {
        const old = this.cluster.liveWriters().find((x) => x.phase === "serving" && !x.fenced);
        if (old === undefined) return;
        const other = WRITER_HOSTS.find((h) => h !== old.host)!;
        if (this.cluster.liveWriters().some((x) => x.host === other)) return;
        let id: number | undefined;
        if (kind === "isolate-writer") {
          id = this.partition([old.host], [...this.cluster.nodes.map((n) => n.host), CP_HOST, other]);
        }
        const successor = this.cluster.startWriter(other);
        done({
          kind, nodes: [], until: this.now + this.duration() * 2,
          heal: () => {
            if (id !== undefined) this.unpartition(id);
            // The old writer runs on for a while after the heal (it must find itself fenced), then dies.
            this.at(100 + this.random.int(1000), () => { if (old.phase !== "dead") this.cluster.killWriter(old); });
          },
        }, { stale: old.name, successor: successor.name });
        return;
      }
      case "kill-in-recovery": {
        // A new writer dies somewhere inside its recovery: after the epoch bump, between setEpoch and
        // annul, or while re-replicating — the next writer must cope with a half-done recovery.
        const old = this.cluster.liveWriters().find((x) => x.active);
        if (old !== undefined) this.cluster.killWriter(old);
        const w = this.startWriterSomewhere();
        const delay = this.random.float() * 30;
        this.at(delay, () => { if (w.phase === "recovering") this.cluster.killWriter(w); });
        this.injected[kind] = (this.injected[kind] ?? 0) + 1;
        this.trace("inject", { kind, writer: w.name, killAfterMs: delay });
        return;
      }
      case "dueling-writers": {
        // Two writers recover at once (a supervisor and an operator both restarting one): the epoch's
        // compare-and-set picks one; the other must fail or be fenced, never both serve.
        for (const w of this.cluster.liveWriters()) this.cluster.killWriter(w);
        const a = this.cluster.startWriter(WRITER_HOSTS[0]);
        const b = this.cluster.startWriter(WRITER_HOSTS[1]);
        this.injected[kind] = (this.injected[kind] ?? 0) + 1;
        this.trace("inject", { kind, writers: [a.name, b.name] });
        return;
      }
      case "crash-in-start": {
        // A node killed again while it replays its hot log and reopens its segments.
        const n = pickNode();
        if (n === undefined || !(await this.allowed([n.id]))) return;
        await this.cluster.killNode(n, true);
        this.cluster.startNode(n);
        const delay = this.random.float() * 3;
        this.at(delay, () => { if (n.phase === "starting") void this.cluster.killNode(n, this.random.chance(0.7)); });
        done({ kind, nodes: [n.id], until, heal: () => this.cluster.startNode(n) }, { killAfterMs: delay });
        return;
      }
      case "orphan-records": {
        // Records that never became durable and that the next recovery does not see: the writer is cut
        // off from all but 2 or 3 nodes, so its records pile up there (no write quorum, VDL stalls);
        // then it dies or is isolated, and with 2 kept, those 2 go down while a successor recovers from
        // the other 4. When they return they hold records above the recovered VDL, written under an
        // older epoch: they must annul them (invariant 8) before they serve or take writes again.
        const old = this.cluster.liveWriters().find((x) => x.phase === "serving" && !x.fenced);
        if (old === undefined || faulty.size > 0) return;
        const other = WRITER_HOSTS.find((h) => h !== old.host)!;
        if (this.cluster.liveWriters().some((x) => x.host === other)) return;
        const keep = this.random.chance(0.6) ? 2 : 3;
        const kept = this.random.shuffle([...this.cluster.nodes]).slice(0, keep);
        const cut = this.cluster.nodes.filter((n) => !kept.includes(n));
        const id = this.partition([old.host], cut.map((n) => n.host));
        const pileMs = 50 + this.random.int(400);
        const isolate = this.random.chance(0.5);
        const downMs = 200 + this.random.int(1500);
        const f: ActiveFault = {
          kind, nodes: keep === 2 ? kept.map((n) => n.id) : [], until: this.now + pileMs + downMs + 100,
          heal: () => { for (const n of kept) this.cluster.startNode(n); },
        };
        this.at(pileMs, () => {
          void (async () => {
            this.unpartition(id);
            let isolation: number | undefined;
            if (isolate) isolation = this.partition([old.host], [...this.cluster.nodes.map((n) => n.host), CP_HOST, other]);
            else this.cluster.killWriter(old);
            if (keep === 2) for (const n of kept) await this.cluster.killNode(n, this.random.chance(0.5));
            const successor = this.cluster.startWriter(other);
            this.trace("orphan-records-successor", { stale: old.name, successor: successor.name, isolated: isolate });
            if (isolation !== undefined) {
              const lift = isolation;
              this.at(downMs + 200 + this.random.int(800), () => {
                this.unpartition(lift);
                this.at(100 + this.random.int(500), () => { if (old.phase !== "dead") this.cluster.killWriter(old); });
              });
            }
          })();
        });
        done(f, { writer: old.name, kept: kept.map((n) => n.id), pileMs, downMs, isolate });
        return;
      }
      case "crash-control-plane": {
        // Now (kill -9, with power loss 70%), or inside the next epoch bump or recovery record, while
        // a writer recovers: the store may have made the change durable and died before answering.
        if (!this.cluster.controlPlaneUp) return;
        const crashDisk = this.random.chance(0.7);
        const inCall = this.random.chance(0.5);
        const heal = (): void => {
          this.cluster.disarmControlPlaneCrash();
          this.cluster.restartControlPlane();
        };
        if (!inCall) {
          this.cluster.crashControlPlane(crashDisk);
          done({ kind, nodes: [], until, heal }, { crashDisk });
          return;
        }
        const call = this.random.pick(["recordRecovery", "bumpVolumeEpoch"]);
        const afterMs = this.random.float() * 1.5;
        this.cluster.armControlPlaneCrash([call], afterMs, crashDisk);
        const old = this.cluster.liveWriters().find((x) => x.active);
        if (old !== undefined) this.cluster.killWriter(old);
        const w = this.startWriterSomewhere();
        done({ kind, nodes: [], until, heal }, { crashDisk, call, afterMs, writer: w.name });
        return;
      }
      case "partition-writer-cp": {
        if (writer === undefined) return;
        const id = this.partition([writer.host], [CP_HOST]);
        done({ kind, nodes: [], until, heal: () => this.unpartition(id) }, { writer: writer.name });
        return;
      }
    }
  }

  /** Clears a node's disk and store faults; the node, fenced or not, restarts (a repaired node). */
  private async repairDisk(n: SimNode): Promise<void> {
    n.process.disk.faults = { ...n.process.disk.faults, syncErrorRate: 0, writeErrorRate: 0, capacityBytes: calmDisk.capacityBytes };
    if (n.phase === "up" || n.phase === "starting") await this.cluster.killNode(n, this.random.chance(0.5));
    this.cluster.startNode(n);
  }

  /** Flips one bit of a stored record, image or segment metadata of a stopped node. */
  private async flipStore(n: SimNode): Promise<string | undefined> {
    const store = n.baseStore; // no clock: commits apply at once, as editing a file at rest would
    const pg = this.random.int(this.cluster.config.pgCount);
    const key = { volumeId: VOLUME_ID, pgId: PgId(pg) };
    const what = this.random.pick(["record", "record", "image", "meta"] as const);
    const bit = this.random.int(1 << 16);
    if (what === "meta") return (await store.flipStoredBit("meta", key, 0, 0, bit)) ? `meta of PG ${pg}` : undefined;
    if (what === "record") {
      const { records } = store.recordsByLsn(key, 0 as never, Number.MAX_SAFE_INTEGER as never, 1 << 20);
      if (records.length === 0) return undefined;
      const r = this.random.pick(records);
      return (await store.flipStoredBit("record", key, r.pageNo, r.lsn, bit)) ? `record ${r.lsn} of PG ${pg}` : undefined;
    }
    const g = this.cluster.config.pgPages;
    for (let tries = 0; tries < 8; tries++) {
      const page = 1 + pg * g + this.random.int(g);
      const lsns = store.imageLsns(key, page as never, 0 as never, Number.MAX_SAFE_INTEGER as never, 64);
      if (lsns.length === 0) continue;
      const lsn = this.random.pick(lsns);
      return (await store.flipStoredBit("image", key, page, lsn, bit)) ? `image of page ${page} at ${lsn}` : undefined;
    }
    return undefined;
  }

  // ------------------------------------------------------------------------------------ partitions

  private partition(a: readonly string[], b: readonly string[]): number {
    const id = this.nextPartitionId++;
    this.partitions.push({ id, a, b });
    this.world.network.partition(a, b);
    return id;
  }

  /** Lifts one partition; the network only knows "heal everything", so the others are cut again. */
  private unpartition(id: number): void {
    this.partitions = this.partitions.filter((p) => p.id !== id);
    this.world.network.heal();
    for (const p of this.partitions) this.world.network.partition(p.a, p.b);
  }

  // ------------------------------------------------------------------------------------ outage

  /**
   * Beyond tolerance: an AZ plus one more node go down. No VDL may advance (a quorum of 4 is
   * impossible), reads of durable pages must still be served (3 of 6 is a read quorum), and a writer
   * that starts recovering must not finish. Then everything comes back.
   */
  private async outage(): Promise<void> {
    this.outageDone = true;
    const az = this.random.pick(["a", "b", "c"]);
    const extra = this.random.pick(this.cluster.nodes.filter((n) => n.az !== az));
    const nodes = [...this.cluster.nodes.filter((n) => n.az === az), extra];
    for (const n of nodes) await this.cluster.killNode(n, this.random.chance(0.7));
    this.injected.outage = 1;
    this.trace("outage", { nodes: nodes.map((n) => n.id) });
    const until = this.now + this.plan.outageMs;
    // In-flight acknowledgements from before the kill may still land: freeze after they have.
    this.at(50, () => {
      const vdlByWriter = new Map<string, number>();
      for (const w of this.cluster.writers) vdlByWriter.set(w.name, w.vw?.vdl() ?? w.maxVdl);
      this.checker.frozen = { sinceMs: this.now, vdlByWriter };
      this.trace("outage-frozen", Object.fromEntries(vdlByWriter));
      const serving = this.cluster.writers.find((w) => w.phase === "serving" && w.process.alive && !w.fenced);
      if (serving?.vw !== undefined) {
        const vw = serving.vw;
        for (let i = 0; i < 4; i++) {
          const page = 1 + this.random.int(this.cluster.history.pageCount);
          const p = vw.vdl();
          vw.readPage(page as never, p).then(
            (r) => { this.outageReadsOk++; this.checker.onRead(`${serving.name} outage`, page, p, r); },
            (e: unknown) => {
              this.outageReadsFailed++;
              if (!isBorealisError(e, "STALE_VOLUME_EPOCH")) this.checker.fail("invariant-12", `read of page ${page} at VDL ${p} failed with 3 of 6 segments up (AZ+1 must still read): ${String(e)}`);
            },
          );
        }
      }
    });
    // A second writer tries to take over: it cannot raise the epoch on 4 of 6, so it must not serve.
    let contender: SimWriter | undefined;
    const contenderAt = 100 + this.random.int(500);
    this.at(contenderAt, () => {
      const other = WRITER_HOSTS.find((h) => !this.cluster.liveWriters().some((w) => w.host === h));
      if (other !== undefined) contender = this.cluster.startWriter(other);
    });
    this.active.push({
      kind: "outage", nodes: nodes.map((n) => n.id), until,
      heal: () => {
        if (contender !== undefined && contender.phase === "serving") {
          this.checker.fail("beyond-tolerance", `${contender.name} finished recovery while 3 of 6 segments were down`);
        }
        if (contender !== undefined && contender.phase === "recovering") this.cluster.killWriter(contender);
        this.checker.frozen = undefined;
        for (const n of nodes) this.cluster.startNode(n);
      },
    });
  }

  // ------------------------------------------------------------------------------------ heal

  /** Ends every fault: partitions, links, disks; restarts every node that is not up. */
  async healAll(): Promise<void> {
    for (const t of this.pendingActions) t.cancel();
    this.pendingActions.clear();
    for (const f of this.active) {
      this.trace("heal", { kind: f.kind, nodes: f.nodes, final: true });
      await f.heal();
    }
    this.active = [];
    this.partitions = [];
    this.cluster.restartControlPlane();
    this.world.network.heal();
    for (const a of [...WRITER_HOSTS, CP_HOST, ...this.cluster.nodes.map((n) => n.host)]) {
      for (const b of this.cluster.nodes.map((n) => n.host)) this.world.network.setLink(a, b, calmLink);
    }
    for (const n of this.cluster.nodes) {
      const d = n.process.disk;
      d.faults = { ...d.faults, syncErrorRate: 0, writeErrorRate: 0, capacityBytes: calmDisk.capacityBytes };
      if (n.fenced) await this.cluster.killNode(n, false);
      if (n.phase !== "up" && n.phase !== "starting") this.cluster.startNode(n);
    }
  }
}
