/**
 * A Borealis cluster inside one simulated world: a control-plane process, six storage-node processes
 * n1..n6 in AZs a,a,b,b,c,c, and writer processes (w1, w2: two hosts, so a stale writer can keep
 * running beside its successor). Every process runs the production cores unchanged over its own
 * simulated `Env`:
 *
 * - storage: `StorageNode` over a `MemoryPageStore` (LMDB is real I/O; the memory store commits
 *   atomically on the process's clock, so a kill drops a commit in flight) and the process's
 *   `SimDisk` for the hot log, served by the real `RpcServer`, heartbeating to the control plane;
 * - control plane: `ControlPlane` over `EmbeddedKv` on its own `SimDisk`; other processes reach it
 *   through `controlPlaneFor(caller)`, which moves each call across the simulated network (latency,
 *   partitions, timeouts) and answers on the caller's clock, so a dead caller hears nothing;
 * - writer: `recoverVolume` then `VolumeWriter`, driven by the synthetic workload (workload.ts).
 *
 * The cluster knows nothing of faults; the nemesis (nemesis.ts) drives it and the checker
 * (checker.ts) watches it through the hooks here.
 */
import { AssertionError } from "../core/assert.js";
import { BorealisError, isBorealisError } from "../core/errors.js";
import { Az, NodeId, VolumeId, type Epoch, type Lsn } from "../core/types.js";
import type { Env } from "../env/env.js";
import type { ControlPlaneApi } from "../control-plane/api.js";
import { ControlPlane } from "../control-plane/control-plane.js";
import { EmbeddedKv } from "../control-plane/embedded-kv.js";
import { startHeartbeats, type HeartbeatLoop } from "../control-plane/heartbeat.js";
import { NodePool } from "../compute/volume/node-pool.js";
import { recoverVolume, type RecoveredVolume } from "../compute/volume/recovery.js";
import { VolumeWriter } from "../compute/volume/volume-writer.js";
import { MemoryPageStore } from "../storage/page-store.js";
import { StorageNode, type StorageNodeConfig } from "../storage/storage-node.js";
import type { Request, Response, SegmentState } from "../wire/messages.js";
import { RpcServer } from "../wire/rpc-server.js";
import type { History } from "./model.js";
import type { SeededRandom } from "./random.js";
import type { SimProcess, SimWorld } from "./world.js";
import { SyntheticWorkload, type WorkloadHooks } from "./workload.js";

export const VOLUME_ID = VolumeId("simvol");

/** A node's segment states, from memory (nodeStatus does no I/O). */
export async function nodeSegments(node: StorageNode): Promise<SegmentState[]> {
  const r = await node.handle({ type: "nodeStatus" });
  if (r.type !== "nodeStatus") throw new Error(`nodeStatus answered ${r.type}`);
  return [...r.segments];
}
export const STORAGE_PORT = 7000;
export const CP_HOST = "cp";
export const NODE_AZS: readonly [string, string][] = [["n1", "a"], ["n2", "a"], ["n3", "b"], ["n4", "b"], ["n5", "c"], ["n6", "c"]];
export const WRITER_HOSTS = ["w1", "w2"] as const;

export interface ClusterConfig {
  readonly pageSize: number;
  readonly pgPages: number;
  readonly pgCount: number;
  readonly lal: number;
  readonly storage: Omit<StorageNodeConfig, "nodeId" | "az" | "dataDir">;
  readonly workload: { readonly tickMs: number; readonly commitRate: number; readonly readRate: number; readonly maxPending: number };
  readonly commitTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly recoveryTimeoutMs: number;
}

export type NodePhase = "down" | "starting" | "up" | "failed";

export class SimNode {
  phase: NodePhase = "down";
  node: StorageNode | undefined;
  private server: RpcServer | undefined;
  private heartbeats: HeartbeatLoop | undefined;
  /** The committed page-store data survives restarts; each incarnation gets its own handle. */
  readonly baseStore = new MemoryPageStore();
  /** setEpoch / annul / openSegment requests entered and not answered (a kill may cut one short). */
  adoptsInFlight = 0;
  /** Each segment's SCL when the node was killed: everything counted there was durable (invariant 2). */
  sclAtKill: Map<number, number> | undefined;
  /** The SCL check at the next start is void (corruption injected at rest, or an annulment cut short). */
  skipDurabilityCheck = false;
  incarnation = 0;
  starts = 0;

  constructor(readonly id: NodeId, readonly az: Az, readonly process: SimProcess) {}

  get host(): string {
    return this.process.host;
  }

  get address(): string {
    return `${this.host}:${STORAGE_PORT}`;
  }

  get fenced(): boolean {
    return this.node?.fenced ?? false;
  }

  /** Segment states of a running node (no I/O: nodeStatus answers from memory). */
  async segmentStates(): Promise<SegmentState[] | undefined> {
    if (this.phase !== "up" || this.node === undefined) return undefined;
    try {
      return await nodeSegments(this.node);
    } catch {
      return undefined;
    }
  }

  attach(node: StorageNode, server: RpcServer, heartbeats: HeartbeatLoop): void {
    this.node = node;
    this.server = server;
    this.heartbeats = heartbeats;
  }

  detach(): void {
    this.node = undefined;
    this.server = undefined;
    this.heartbeats = undefined;
  }
}

export type WriterPhase = "recovering" | "serving" | "failed" | "dead";

export class SimWriter {
  phase: WriterPhase = "recovering";
  epoch: Epoch | undefined;
  recovered: RecoveredVolume | undefined;
  vw: VolumeWriter | undefined;
  workload: SyntheticWorkload | undefined;
  pool: NodePool | undefined;
  /** Highest VDL this writer reported, and its recovered start. */
  maxVdl = 0;
  maxVcl = 0;
  startedAtMs: number;
  failure: string | undefined;

  constructor(readonly name: string, readonly process: SimProcess, readonly env: Env) {
    this.startedAtMs = env.clock.nowMs();
  }

  get host(): string {
    return this.process.host;
  }

  get fenced(): boolean {
    return this.vw?.status().fenced !== undefined;
  }

  /** Alive and either recovering or serving unfenced: the cluster has a writer. */
  get active(): boolean {
    return this.phase === "recovering" || (this.phase === "serving" && !this.fenced);
  }
}

export interface ClusterHooks extends WorkloadHooks {
  /** A broken invariant or an unexpected crash of a core: the run has failed. */
  fail(kind: string, message: string): void;
  onRecovered(w: SimWriter, r: RecoveredVolume): void;
  onVdl(w: SimWriter, vdl: number): void;
  onRecoveryRecorded(epoch: Epoch, vdl: Lsn, truncateThrough: Lsn): void;
  onNodeStarted(n: SimNode, states: readonly SegmentState[]): void;
  /** The control plane reopened its store after a crash: the recoveries it holds now. */
  onControlPlaneReopened(recoveries: readonly { epoch: Epoch; vdl: Lsn; truncateThrough: Lsn }[]): void;
}

export class SimCluster {
  readonly nodes: SimNode[] = [];
  readonly writers: SimWriter[] = [];
  private cp!: ControlPlane;
  private cpProcess!: SimProcess;
  /** False from a control-plane crash until its store has reopened: calls go unanswered meanwhile. */
  private cpReady = false;
  private writerCount = 0;

  constructor(
    readonly world: SimWorld,
    readonly config: ClusterConfig,
    readonly history: History,
    private readonly hooks: ClusterHooks,
    private readonly random: SeededRandom,
  ) {
    for (const [id, az] of NODE_AZS) this.nodes.push(new SimNode(NodeId(id), Az(az), world.process(id)));
  }

  get controlPlane(): ControlPlane {
    return this.cp;
  }

  node(id: string): SimNode {
    const n = this.nodes.find((x) => x.id === id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  /** The writer started last: the one the cluster would route clients to. */
  get currentWriter(): SimWriter | undefined {
    return this.writers[this.writers.length - 1];
  }

  liveWriters(): SimWriter[] {
    return this.writers.filter((w) => w.phase !== "dead" && w.process.alive);
  }

  // ------------------------------------------------------------------------------------ start-up

  /** Control plane, six nodes registered, the volume created. Runs the scheduler until done. */
  async bootstrap(): Promise<void> {
    const s = this.world.scheduler;
    this.cpProcess = this.world.process(CP_HOST);
    const cpEnv = this.cpProcess.start();
    const kv = await s.until(EmbeddedKv.open(cpEnv, "/cp"), { untilMs: s.now() + 10_000 });
    this.cp = new ControlPlane(cpEnv, kv);
    this.cpReady = true;
    for (const n of this.nodes) this.startNode(n);
    await s.run({
      untilMs: s.now() + 10_000,
      done: () => this.nodes.every((n) => n.phase === "up"),
    });
    for (let i = 0; i < 50; i++) {
      const alive = (await s.until(this.cp.listNodes())).filter((n) => n.alive).length;
      if (alive === this.nodes.length) break;
      await s.run({ untilMs: s.now() + 200 });
    }
    await s.until(this.cp.createVolume({ volumeId: VOLUME_ID, pageSize: this.config.pageSize, pgPages: this.config.pgPages, pgCount: this.config.pgCount }));
    this.world.trace("cluster-ready", { nodes: this.nodes.length, pgs: this.config.pgCount, pgPages: this.config.pgPages });
  }

  // ------------------------------------------------------------------------------ control plane

  /**
   * The control plane as `caller` reaches it: each call crosses the simulated network both ways and
   * times out when the link is cut or the control plane is down, as the HTTP client would.
   */
  controlPlaneFor(caller: SimProcess): ControlPlaneApi {
    const net = this.world.network;
    const call = <T>(what: string, fn: (api: ControlPlane) => Promise<T>): Promise<T> => new Promise<T>((resolve, reject) => {
      let settled = false;
      const timeout = caller.schedule(2000, () => {
        if (settled) return;
        settled = true;
        reject(new BorealisError("TIMEOUT", `control plane ${what}: no answer in 2000 ms`));
      });
      const latency = () => 0.2 + this.random.float() * 0.8;
      if (net.isPartitioned(caller.host, CP_HOST)) return; // the request is lost; the timeout answers
      this.cpProcess.schedule(latency(), () => {
        if (!this.cpReady) return; // still reopening its store: no answer
        const armed = this.cpCrashArmed;
        if (armed !== undefined && armed.on.includes(what)) {
          // Dies somewhere inside this call: before, during or after its store write, or before the answer.
          this.cpCrashArmed = undefined;
          this.cpProcess.schedule(armed.afterMs, () => {
            this.world.trace("control-plane-crash-in-call", { call: what, afterMs: armed.afterMs, crashDisk: armed.crashDisk });
            this.crashControlPlane(armed.crashDisk);
          });
        }

        fn(this.cp).then(
          (v) => {
            if (what === "recordRecovery") {
              const r = v as unknown as { recoveries: readonly { epoch: Epoch; vdl: Lsn; truncateThrough: Lsn }[] };
              const last = r.recoveries[r.recoveries.length - 1];
              if (last !== undefined) this.hooks.onRecoveryRecorded(last.epoch, last.vdl, last.truncateThrough);
            }
            if (net.isPartitioned(caller.host, CP_HOST)) return;
            caller.schedule(latency(), () => {
              if (settled) return;
              settled = true;
              timeout.cancel();
              resolve(v);
            });
          },
          (e: unknown) => {
            if (e instanceof AssertionError) this.hooks.fail("assertion", `control plane ${what}: ${e.message}`);
            if (net.isPartitioned(caller.host, CP_HOST)) return;
            caller.schedule(latency(), () => {
              if (settled) return;
              settled = true;
              timeout.cancel();
              reject(e);
            });
          },
        );
      });
    });
    return {
      listNodes: () => call("listNodes", (cp) => cp.listNodes()),
      heartbeat: (r) => call("heartbeat", (cp) => cp.heartbeat(r)),
      listVolumes: () => call("listVolumes", (cp) => cp.listVolumes()),
      getVolume: (id) => call("getVolume", (cp) => cp.getVolume(id)),
      createVolume: (r) => call("createVolume", (cp) => cp.createVolume(r)),
      addProtectionGroup: (id) => call("addProtectionGroup", (cp) => cp.addProtectionGroup(id)),
      bumpVolumeEpoch: (id, e) => call("bumpVolumeEpoch", (cp) => cp.bumpVolumeEpoch(id, e)),
      setWriter: (r) => call("setWriter", (cp) => cp.setWriter(r)),
      recordRecovery: (id, r) => call("recordRecovery", (cp) => cp.recordRecovery(id, r)),
    };
  }

  /** kill -9 of the control plane (with power loss: its store keeps only what it made durable). */
  crashControlPlane(crashDisk: boolean): void {
    this.cpReady = false;
    this.cpProcess.kill({ crashDisk });
  }

  /** The control plane dies `afterMs` into the next call named in `on` (until `disarmControlPlaneCrash`). */
  armControlPlaneCrash(on: readonly string[], afterMs: number, crashDisk: boolean): void {
    this.cpCrashArmed = { on, afterMs, crashDisk };
  }

  disarmControlPlaneCrash(): void {
    this.cpCrashArmed = undefined;
  }

  private cpCrashArmed: { readonly on: readonly string[]; readonly afterMs: number; readonly crashDisk: boolean } | undefined;

  /** Restarts the control plane on what its disk kept. */
  restartControlPlane(): void {
    if (this.cpReady || this.cpProcess.alive) return;
    const env = this.cpProcess.start();
    void (async () => {
      const kv = await EmbeddedKv.open(env, "/cp");
      const cp = new ControlPlane(env, kv);
      // A recovery can be on the control plane's disk without anyone having heard of it: the crash
      // came after the store's rename and before the answer. The next writer finds it and applies its
      // annulment, so the model must learn it here (and nothing acknowledged may have vanished).
      const volume = await cp.getVolume(VOLUME_ID);
      this.hooks.onControlPlaneReopened(volume.recoveries);
      this.cp = cp;
      this.cpReady = true;
      this.world.trace("control-plane-up", { epoch: volume.volumeEpoch, recoveries: volume.recoveries.length });
    })().catch((e: unknown) => this.hooks.fail("liveness", `control plane could not reopen its store: ${String(e)}`));
  }

  get controlPlaneUp(): boolean {
    return this.cpReady;
  }

  // ------------------------------------------------------------------------------ storage nodes

  /** Starts (or restarts) a node: recover from its disk and page store, listen, heartbeat. */
  startNode(n: SimNode): void {
    if (n.phase === "starting" || n.phase === "up") return;
    n.phase = "starting";
    n.starts++;
    const incarnation = ++n.incarnation;
    const env = n.process.start();
    const store = n.baseStore.reopen({ clock: env.clock });
    const config: StorageNodeConfig = { ...this.config.storage, nodeId: n.id, az: n.az, dataDir: "/data" };
    n.adoptsInFlight = 0;
    void (async () => {
      let node: StorageNode;
      try {
        node = await StorageNode.open(env, config, store);
      } catch (e) {
        if (incarnation !== n.incarnation) return;
        if (e instanceof AssertionError) this.hooks.fail("assertion", `${n.id} open: ${e.message}`);
        n.phase = "failed";
        this.world.trace("node-open-failed", { node: n.id, error: String(e) });
        return;
      }
      if (incarnation !== n.incarnation) return;
      const server = new RpcServer(env, { nodeId: n.id, az: n.az, handler: (req) => this.serve(n, node, req) });
      await server.listen({ host: n.host, port: STORAGE_PORT });
      if (incarnation !== n.incarnation) return;
      const heartbeats = startHeartbeats(env, this.controlPlaneFor(n.process), { nodeId: n.id, az: n.az, address: n.address });
      n.attach(node, server, heartbeats);
      n.phase = "up";
      const states = await nodeSegments(node);
      this.world.trace("node-up", { node: n.id, segments: states.map((s) => [s.geometry.pgId, s.scl]) });
      this.hooks.onNodeStarted(n, states);
    })().catch((e: unknown) => {
      this.hooks.fail(e instanceof AssertionError ? "assertion" : "crash", `${n.id} start: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    });
  }

  /** The node's request handler, watched: assertion failures fail the run, adopts in flight are counted. */
  private async serve(n: SimNode, node: StorageNode, req: Request): Promise<Response> {
    const adopt = req.type === "setEpoch" || req.type === "annul" || req.type === "openSegment";
    if (adopt) n.adoptsInFlight++;
    try {
      return await node.handle(req);
    } catch (e) {
      if (e instanceof AssertionError) this.hooks.fail("assertion", `${n.id} ${req.type}: ${e.message}`);
      throw e;
    } finally {
      if (adopt) n.adoptsInFlight--;
    }
  }

  /** kill -9 (and, with `crashDisk`, power loss: unsynced writes lost or torn). */
  async killNode(n: SimNode, crashDisk: boolean): Promise<void> {
    if (n.phase === "up") {
      const states = await n.segmentStates();
      if (states !== undefined) n.sclAtKill = new Map(states.map((s) => [s.geometry.pgId as number, s.scl as number]));
      if (n.adoptsInFlight > 0) n.skipDurabilityCheck = true;
    }
    // Killed while starting: the SCLs owed are still those of the last incarnation that ran.
    n.incarnation++;
    n.process.kill({ crashDisk });
    n.detach();
    n.phase = "down";
  }

  // ------------------------------------------------------------------------------------- writers

  /** Starts a writer on `host` (killing whatever ran there): recovery, then serving the workload. */
  startWriter(host: string): SimWriter {
    const p = this.world.process(host);
    for (const w of this.writers) if (w.host === host && w.phase !== "dead") this.killWriter(w);
    const env = p.start();
    const name = `${host}#${++this.writerCount}`;
    const w = new SimWriter(name, p, env);
    this.writers.push(w);
    this.world.trace("writer-start", { writer: name });
    const pool = new NodePool(env, { senderId: name, requestTimeoutMs: this.config.requestTimeoutMs, connectTimeoutMs: 1000 });
    w.pool = pool;
    const controlPlane = this.controlPlaneFor(p);
    recoverVolume({ env, controlPlane, pool, volumeId: VOLUME_ID, lal: this.config.lal, timeoutMs: this.config.recoveryTimeoutMs }).then(
      (r) => {
        if (w.phase !== "recovering") return;
        w.recovered = r;
        w.epoch = r.epoch;
        w.maxVdl = r.report.vdl;
        w.maxVcl = r.report.vdl;
        const vw = new VolumeWriter({
          env, pool, controlPlane, volume: r.volume, epoch: r.epoch, annulments: r.annulments, trackerStart: r.trackerStart,
          commitTimeoutMs: this.config.commitTimeoutMs, readTimeoutMs: this.config.readTimeoutMs,
        });
        w.vw = vw;
        w.phase = "serving";
        this.world.trace("writer-recovered", { writer: name, ...r.report });
        this.hooks.onRecovered(w, r);
        vw.onVdl((vdl) => this.hooks.onVdl(w, vdl));
        w.workload = new SyntheticWorkload({
          name, vw, clock: env.clock, random: this.random.fork(), history: this.history, lsnState: r.lsnState,
          truncateThrough: r.report.truncateThrough, lal: this.config.lal, hooks: this.hooks, ...this.config.workload,
        });
        w.workload.start();
      },
      (e: unknown) => {
        if (w.phase !== "recovering") return;
        if (e instanceof AssertionError) this.hooks.fail("assertion", `${name} recovery: ${e.message}`);
        w.phase = "failed";
        w.failure = e instanceof Error ? e.message : String(e);
        this.world.trace("writer-recovery-failed", { writer: name, code: isBorealisError(e) ? e.code : "?", error: w.failure });
        // The process exits: its clients and timers go with it.
        pool.close();
        p.kill({ crashDisk: false });
      },
    );
    return w;
  }

  killWriter(w: SimWriter): void {
    if (w.phase === "dead") return;
    w.workload?.stop();
    w.phase = "dead";
    // One writer per host at a time (startWriter kills the last one first), so the process is its.
    if (w.process.alive) w.process.kill({ crashDisk: false });
    this.world.trace("writer-killed", { writer: w.name });
  }

  /** Segment SCLs of every running node, by PG (dead nodes are absent). */
  async sclsByPg(): Promise<Map<number, Map<string, number>>> {
    const out = new Map<number, Map<string, number>>();
    for (let pg = 0; pg < this.config.pgCount; pg++) out.set(pg, new Map());
    for (const n of this.nodes) {
      const states = await n.segmentStates();
      for (const s of states ?? []) out.get(s.geometry.pgId)?.set(n.id, s.scl);
    }
    return out;
  }
}

