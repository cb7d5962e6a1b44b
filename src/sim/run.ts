/**
 * One simulated run from one seed: draw the configuration and the fault plan (swarm testing — each
 * seed enables a different subset of faults at different rates), bootstrap the cluster, alternate
 * nemesis steps with bounded stretches of virtual time and the per-step checks, then heal
 * everything, let the cluster settle, recover a fresh writer, prove that commits are acknowledged
 * again, and run the final checks. Everything — configuration, faults, latencies, workload — comes
 * from the seed, so a run replays exactly and its trace hash says so.
 *
 * Bounded: every run has a step count, a virtual-time limit per stretch, and a global event budget.
 */
import { AssertionError } from "../core/assert.js";
import { History } from "./model.js";
import { Checker, type CheckStats, type Failure } from "./checker.js";
import { SimCluster, type ClusterConfig, type ClusterHooks } from "./cluster.js";
import { Nemesis, drawPlan, type FaultKind, type NemesisMode, type NemesisPlan } from "./nemesis.js";
import type { SeededRandom } from "./random.js";
import { SimWorld } from "./world.js";

export interface SimOptions {
  readonly seed: number;
  /** Nemesis steps before the final phase. Default 60. */
  readonly steps?: number;
  /** Force a nemesis mode instead of drawing one from the seed. */
  readonly mode?: NemesisMode;
  /** Only these fault kinds (a targeted run); default: the seed draws a subset of all. */
  readonly faults?: readonly FaultKind[];
  /** Print the trace as it is written. */
  readonly verbose?: boolean;
  /** Events the whole run may take. Default 4,000,000. */
  readonly maxEvents?: number;
}

export interface SimResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly traceHash: string;
  readonly failures: readonly Failure[];
  readonly mode: NemesisMode;
  readonly plan: NemesisPlan;
  readonly config: ClusterConfig;
  readonly stats: CheckStats & {
    readonly mtrs: number;
    readonly recoveries: number;
    readonly writers: number;
    readonly faults: Record<string, number>;
    readonly finalVdl: number;
  };
  readonly virtualMs: number;
  readonly events: number;
  readonly wallMs: number;
  /** The last trace lines (for a failure report). */
  readonly traceTail: readonly string[];
}

/** The run's configuration, drawn from the seed. Small volumes and files, so every path is exercised. */
export function drawConfig(r: SeededRandom): ClusterConfig {
  return {
    pageSize: 512,
    pgPages: 3 + r.int(6),
    pgCount: 2 + r.int(3),
    lal: r.pick([16, 64, 512, 100_000]),
    storage: {
      hotLogFileBytes: r.pick([2048, 8192, 65536, 1 << 22]),
      materializeThreshold: r.pick([2, 4, 16]),
      retainLsns: 1e12,
      sortMinBytes: r.pick([256, 4096, 65536]),
      sortMaxDelayMs: r.pick([5, 50, 200]),
      backgroundSliceMs: 10,
      backgroundPauseMs: 1,
    },
    workload: { tickMs: 10 + r.int(30), commitRate: 0.3 + r.float() * 0.6, readRate: 0.05 + r.float() * 0.3, maxPending: 4 + r.int(40) },
    commitTimeoutMs: 4000,
    readTimeoutMs: 3000,
    requestTimeoutMs: 1500,
    recoveryTimeoutMs: 8000,
  };
}

export async function runSimulation(options: SimOptions): Promise<SimResult> {
  const started = performance.now();
  const steps = options.steps ?? 60;
  const maxEvents = options.maxEvents ?? 4_000_000;
  const world = new SimWorld(options.seed);
  world.verbose = options.verbose ?? false;
  const s = world.scheduler;
  const config = drawConfig(world.random.fork());
  const plan = drawPlan(world.random.fork(), steps, options.mode, options.faults);
  const stepMs = 100 + world.random.int(300);
  const history = new History(config.pageSize, config.pgPages, config.pgCount);
  const checker = new Checker(world, history);
  const hooks: ClusterHooks = {
    fail: (kind, message) => checker.fail(kind, message),
    onSubmit: (w, m) => checker.onSubmit(w, m),
    onAck: (w, m) => checker.onAck(w, m),
    onUnknown: (w, m, e) => checker.onUnknown(w, m, e),
    onRead: (w, p, rp, r) => checker.onRead(w, p, rp, r),
    onReadFailed: (w, p, rp, e) => checker.onReadFailed(w, p, rp, e),
    onRecovered: (w, r) => checker.onRecovered(w, r.report.vdl),
    onVdl: (w, vdl) => checker.onVdl(w, vdl),
    onRecoveryRecorded: (e, vdl, tt) => checker.onRecoveryRecorded(e, vdl, tt),
    onNodeStarted: (n, states) => checker.onNodeStarted(n, states),
    onControlPlaneReopened: (recoveries) => checker.onControlPlaneReopened(recoveries),
  };
  const cluster = new SimCluster(world, config, history, hooks, world.random.fork());
  const nemesis = new Nemesis(world, cluster, checker, world.random.fork(), plan);
  world.trace("run", { seed: options.seed, mode: plan.mode, steps, stepMs, config, plan });

  // A rejection nobody handles inside a core is a crash of that process in production: a failure here.
  const onUnhandled = (reason: unknown): void => {
    checker.fail(reason instanceof AssertionError ? "assertion" : "unhandled-rejection", reason instanceof Error ? reason.stack ?? reason.message : String(reason));
  };
  process.on("unhandledRejection", onUnhandled);
  let finalVdl = 0;
  try {
    await cluster.bootstrap();
    nemesis.startWriterSomewhere();
    for (let step = 0; step < steps && !checker.failed; step++) {
      await nemesis.step(step);
      const why = await s.run({ untilMs: s.now() + stepMs, maxEvents });
      if (why === "events") checker.fail("budget", `event budget of ${maxEvents} exhausted at step ${step}`);
      checker.afterStep(cluster);
      await nemesis.checkProgress();
      const w = cluster.currentWriter;
      world.trace("step", {
        step, writer: w?.name, phase: w?.phase, vdl: w?.vw?.vdl(), mtrs: history.mtrs.length, acked: checker.stats.acked,
        nodes: cluster.nodes.map((n) => `${n.id}:${n.phase}${n.fenced ? "!" : ""}`).join(" "),
      });
    }
    if (!checker.failed) finalVdl = await finalPhase();
  } catch (e) {
    checker.fail(e instanceof AssertionError ? "assertion" : "crash", e instanceof Error ? e.stack ?? e.message : String(e));
  } finally {
    // Let stray continuations of this run settle before the handler goes.
    await new Promise<void>((resolve) => setImmediate(resolve));
    process.off("unhandledRejection", onUnhandled);
  }
  const ok = !checker.failed;
  world.trace("end", { ok, failures: checker.failures.length });
  return {
    seed: options.seed, ok, traceHash: world.traceHash(), failures: checker.failures, mode: plan.mode, plan, config,
    stats: {
      ...checker.stats, mtrs: history.mtrs.length, recoveries: history.recoveries.length, writers: cluster.writers.length,
      faults: nemesis.injected as Record<string, number>, finalVdl,
    },
    virtualMs: s.now(), events: s.eventsRun, wallMs: Math.round(performance.now() - started), traceTail: world.traceLines.slice(-60),
  };

  /** Heal, settle, recover a fresh writer, see commits acknowledged again, check everything. */
  async function finalPhase(): Promise<number> {
    world.trace("final-phase", {});
    await nemesis.healAll();
    await s.run({ untilMs: s.now() + 10_000, maxEvents, done: () => cluster.nodes.every((n) => n.phase === "up" || n.phase === "failed") });
    const down = cluster.nodes.filter((n) => n.phase !== "up");
    if (down.length > 0) checker.fail("liveness", `nodes that did not come back after healing: ${down.map((n) => `${n.id} (${n.phase})`).join(", ")}`);
    await s.run({ untilMs: s.now() + 500, maxEvents });
    for (const w of cluster.writers) cluster.killWriter(w);
    let w = cluster.startWriter("w1");
    for (let attempt = 0; attempt < 5; attempt++) {
      await s.run({ untilMs: s.now() + 30_000, maxEvents, done: () => w.phase !== "recovering" });
      if (w.phase === "serving" || checker.failed) break;
      await s.run({ untilMs: s.now() + 500, maxEvents });
      w = cluster.startWriter("w1");
    }
    if (w.phase !== "serving" || w.vw === undefined || w.workload === undefined) {
      checker.fail("liveness", `no writer recovered after healing (last: ${w.name}, ${w.phase}: ${w.failure ?? ""})`);
      return 0;
    }
    // Progress resumes within a bounded time once everything is healed.
    const workload = w.workload;
    const target = workload.acked + 5;
    await s.run({ untilMs: s.now() + 15_000, maxEvents, done: () => workload.acked >= target || checker.failed });
    if (workload.acked < target && !checker.failed) {
      checker.fail("liveness", `only ${workload.acked} commits acknowledged within 15 s after healing (VDL ${w.vw.vdl()}, ${JSON.stringify(w.vw.status().pgs.map((p) => p.segments.map((x) => `${x.nodeId}:${x.state}:${x.scl}`)))})`);
    }
    workload.stop();
    const vw = w.vw;
    // Every segment catches up once the writer's shippers have nothing new to send.
    await s.run({
      untilMs: s.now() + 15_000, maxEvents,
      done: () => history.mtrs.every((m) => m.status !== "pending") && vw.status().pgs.every((p) => p.segments.every((x) => x.scl >= p.lastLsn)),
    });
    if (checker.failed) return vw.vdl();
    await checker.finalCheck(cluster, w, { run: (p) => s.until(p, { untilMs: s.now() + 60_000, maxEvents }) });
    return vw.vdl();
  }
}
