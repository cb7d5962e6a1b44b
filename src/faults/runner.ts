/**
 * One fault run, start to verdict: a real cluster (`ProcessCluster`: control plane, six storage nodes,
 * the writer, as processes on loopback; fault proxies in front of the nodes when the faults need
 * them), a workload driven by `concurrency` clients through @libsql/client while the nemesis works,
 * then the heal, a kill -9 and restart of the writer (every acknowledged write must survive recovery),
 * final reads retried until they succeed, `PRAGMA integrity_check`, segment convergence, the checker.
 * Everything goes to the run's directory: the history in elle-cli's JSON, the checker's result, the
 * nemesis's episodes, the processes' logs.
 *
 * Every loop here is bounded by the run's deadline or a retry count, and the cluster and the proxies
 * are always torn down (by PID, in `ProcessCluster.destroy`), whatever happens.
 */
import { cp, mkdir, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { createClient } from "@libsql/client";
import { ProcessCluster } from "../testing/process-cluster.js";
import { collectStatus } from "../cli/commands/status.js";
import { realEnv, silentLogger } from "../env/real.js";
import { History, writeElleJson, type Op } from "./history.js";
import { Nemesis, NETWORK_FAULTS, type FaultKind } from "./nemesis.js";
import { FaultProxy } from "./proxy.js";
import { bankWorkload } from "./bank.js";
import { listAppendWorkload } from "./list-append.js";
import { registerWorkload } from "./register.js";
import { clientLoop, errorText, rng, runOp, sleep, type ClientLoopStats, type Workload } from "./workload.js";

export const WORKLOADS = ["bank", "list-append", "register"] as const;
export type WorkloadName = (typeof WORKLOADS)[number];

export interface RunConfig {
  readonly workload: WorkloadName;
  readonly faults: readonly FaultKind[];
  readonly durationS: number;
  readonly seed: number;
  /** Concurrent clients. Default 5. */
  readonly concurrency?: number;
  /** A client operation not answered by then is `info`. Default 5000. */
  readonly opTimeoutMs?: number;
  /** This run's directory (created). */
  readonly dir: string;
  /** Shorter faults and quiet times (CI). */
  readonly quick?: boolean;
  /** Pages per protection group: small, so the database spans several PGs. Default 32. */
  readonly pgPages?: number;
  /** Kill -9 and restart the writer after the heal, before the final reads. Default: when there are faults. */
  readonly restartWriterAtEnd?: boolean;
  readonly log?: (line: string) => void;
}

export interface RunResult {
  readonly name: string;
  readonly workload: WorkloadName;
  readonly faults: readonly FaultKind[];
  readonly seed: number;
  readonly durationS: number;
  readonly elapsedMs: number;
  /** Passed: the checker found nothing, the final reads and the integrity check succeeded, every
   *  segment caught up after the heal, no nemesis problem. */
  readonly valid: boolean;
  readonly checker: { valid: boolean | "unknown"; anomalyTypes: readonly string[] };
  readonly ops: Record<string, { ok: number; fail: number; info: number }>;
  readonly integrityCheck: string;
  readonly finalReadsOk: boolean;
  readonly segmentsConverged: { converged: boolean; ms: number; detail?: string };
  readonly nemesis: {
    episodes: number;
    byKind: Record<string, number>;
    problems: { kind: string; message: string }[];
    corruptions: { node: string; file: string; flips: number; detected: boolean; replaced: boolean }[];
    writerRestartsMs: number[];
  };
  readonly dir: string;
  readonly error?: string;
}

export function makeWorkload(name: WorkloadName, quick: boolean): Workload {
  switch (name) {
    case "bank": return bankWorkload();
    case "list-append": return listAppendWorkload({ activeKeys: 10, maxAppendsPerKey: quick ? 32 : 64 });
    case "register": return registerWorkload({ activeKeys: 5, maxOpsPerKey: quick ? 150 : 300 });
  }
}

export async function runOne(cfg: RunConfig): Promise<RunResult> {
  const started = performance.now();
  const log = cfg.log ?? (() => {});
  const name = `${cfg.workload}_${cfg.faults.length === 0 ? "none" : cfg.faults.join("+")}`;
  await mkdir(cfg.dir, { recursive: true });
  const quick = cfg.quick ?? false;
  const opTimeoutMs = cfg.opTimeoutMs ?? 5000;
  const workload = makeWorkload(cfg.workload, quick);
  const history = new History();
  const needsProxies = cfg.faults.some((f) => NETWORK_FAULTS.includes(f));
  const proxies = new Map<string, FaultProxy>();
  let cluster: ProcessCluster | undefined;
  let nemesis: Nemesis | undefined;
  let integrityCheck = "not run";
  let finalReadsOk = false;
  let segmentsConverged: RunResult["segmentsConverged"] = { converged: false, ms: 0, detail: "not checked" };
  let error: string | undefined;
  const problems: { kind: string; message: string }[] = [];

  try {
    // The proxies take their ports before the cluster chooses its port range, so neither can take
    // the other's; each learns its node's port when the node starts.
    if (needsProxies) {
      for (let i = 1; i <= 6; i++) proxies.set(`n${i}`, await FaultProxy.start({ random: rng(cfg.seed * 7 + i).next }));
    }
    cluster = await ProcessCluster.start({
      pgPages: cfg.pgPages ?? 32,
      cacheMb: 32,
      commitTimeoutMs: 10_000,
      ...(needsProxies ? {
        advertise: (n) => {
          const p = proxies.get(n.name);
          if (p === undefined) throw new Error(`no fault proxy for ${n.name}`);
          p.setTarget({ host: "127.0.0.1", port: n.port });
          return p.address;
        },
      } : {}),
    });
    log(`${name}: cluster up in ${cluster.dir} (writer ${cluster.writerUrl}${needsProxies ? ", fault proxies in front of the nodes" : ""})`);
    await retry(5, 500, async () => {
      const db = createClient({ url: cluster!.writerUrl });
      try {
        await workload.setup(db);
      } finally {
        db.close();
      }
    });

    nemesis = new Nemesis({
      cluster, proxies, faults: cfg.faults, rand: rng(cfg.seed), history,
      intervalMs: quick ? [800, 2000] : [2000, 5000],
      holdMs: quick ? [1000, 2500] : [2000, 5000],
      log,
    });
    const deadline = performance.now() + cfg.durationS * 1000;
    let stop = false;
    const concurrency = cfg.concurrency ?? 5;
    let nextProcess = concurrency;
    const stats: ClientLoopStats = { ok: 0, fail: 0, info: 0 };
    const clients = Array.from({ length: concurrency }, (_, i) => clientLoop({
      url: cluster!.writerUrl, workload, history, rand: rng(cfg.seed * 1000 + i + 1), process: i,
      nextProcess: () => nextProcess++, opTimeoutMs, deadline, stopped: () => stop,
    }, stats));
    const nemesisDone = nemesis.run(deadline, () => stop).finally(() => nemesis!.healAll());
    try {
      await Promise.all([...clients, nemesisDone]);
    } finally {
      stop = true;
    }
    history.closeOutstanding();
    log(`${name}: load done (${stats.ok} ok, ${stats.fail} fail, ${stats.info} info; ${nemesis.episodes.length} fault episodes)`);

    // Recovery after the faults: every acknowledged write must be there after a kill -9 of the writer.
    if (cfg.restartWriterAtEnd ?? cfg.faults.length > 0) {
      await cluster.kill(cluster.writer);
      await retry(5, 1000, () => cluster!.startWriter());
      history.nemesis("final-writer-restart", {});
    }

    // Final reads, retried (as new processes) until each succeeds: the cluster must serve again.
    const db = createClient({ url: cluster.writerUrl });
    try {
      finalReadsOk = true;
      for (const { f, value } of workload.finalOps()) {
        let done = false;
        for (let attempt = 0; attempt < 30 && !done; attempt++) {
          const op = await runOp(history, db, workload, nextProcess++, f, value, opTimeoutMs * 2);
          done = op.type === "ok";
          if (!done) await sleep(500);
        }
        if (!done) finalReadsOk = false;
      }
      integrityCheck = await retry(10, 1000, async () => {
        const rs = await db.execute("PRAGMA integrity_check");
        return rs.rows.map((r) => String(r[0])).join("; ");
      }).catch((e: unknown) => `failed: ${errorText(e)}`);
    } finally {
      db.close();
    }
    segmentsConverged = await waitForConvergence(cluster, quick ? 15_000 : 30_000);
    log(`${name}: final reads ${finalReadsOk ? "ok" : "FAILED"}, integrity_check ${integrityCheck}, segments ${segmentsConverged.converged ? "converged" : "NOT converged"} (${segmentsConverged.ms} ms)`);
  } catch (e) {
    error = e instanceof Error ? e.message.slice(0, 4000) : String(e);
    log(`${name}: run error: ${error}`);
  } finally {
    history.closeOutstanding("run aborted");
    if (cluster !== undefined) {
      await cp(path.join(cluster.dir, "logs"), path.join(cfg.dir, "logs"), { recursive: true }).catch(() => {});
      await cluster.destroy();
    }
    for (const p of proxies.values()) await p.close();
  }

  const check = workload.check(history.ops);
  await writeFile(path.join(cfg.dir, "checker.json"), JSON.stringify(check.detail, null, 2));
  for (const f of workload.elleFiles(history.ops)) await writeElleJson(path.join(cfg.dir, f.name), f.ops, f.mapValue);
  if (nemesis !== undefined) {
    problems.push(...nemesis.problems.map((p) => ({ kind: p.kind, message: p.message })));
    await writeFile(path.join(cfg.dir, "nemesis.json"), JSON.stringify({
      episodes: nemesis.episodes, problems: nemesis.problems, corruptions: nemesis.corruptions, writerRestartsMs: nemesis.writerRestartsMs,
    }, null, 2));
  }
  const byKind: Record<string, number> = {};
  for (const ep of nemesis?.episodes ?? []) byKind[ep.kind] = (byKind[ep.kind] ?? 0) + 1;
  // Test plan §6: after the heal every segment is complete again (the writer catches lagging ones up).
  if (cluster !== undefined && error === undefined && !segmentsConverged.converged) {
    problems.push({ kind: "segments-not-converged", message: `segments still behind after ${segmentsConverged.ms} ms: ${segmentsConverged.detail ?? ""}` });
  }
  const valid = check.valid === true && error === undefined && finalReadsOk && integrityCheck === "ok" && problems.length === 0;
  const result: RunResult = {
    name, workload: cfg.workload, faults: cfg.faults, seed: cfg.seed, durationS: cfg.durationS,
    elapsedMs: Math.round(performance.now() - started), valid,
    checker: { valid: check.valid, anomalyTypes: check.anomalyTypes },
    ops: opCounts(history.ops), integrityCheck, finalReadsOk, segmentsConverged,
    nemesis: {
      episodes: nemesis?.episodes.length ?? 0, byKind, problems,
      corruptions: (nemesis?.corruptions ?? []).map(({ node, file, flips, detected, replaced }) => ({ node, file, flips, detected, replaced })),
      writerRestartsMs: nemesis?.writerRestartsMs ?? [],
    },
    dir: cfg.dir,
    ...(error !== undefined ? { error } : {}),
  };
  await writeFile(path.join(cfg.dir, "result.json"), JSON.stringify(result, null, 2));
  return result;
}

function opCounts(ops: readonly Op[]): RunResult["ops"] {
  const out: Record<string, { ok: number; fail: number; info: number }> = {};
  for (const op of ops) {
    if (op.process === "nemesis" || op.type === "invoke") continue;
    const c = (out[op.f] ??= { ok: 0, fail: 0, info: 0 });
    c[op.type]++;
  }
  return out;
}

/**
 * Waits until every protection group's six segments report the same SCL (every segment complete),
 * as the nodes themselves say (nodeStatus). Bounded by `timeoutMs`.
 */
export async function waitForConvergence(cluster: ProcessCluster, timeoutMs: number): Promise<RunResult["segmentsConverged"]> {
  const env = realEnv({ log: silentLogger });
  const started = performance.now();
  let detail = "";
  while (performance.now() - started < timeoutMs) {
    try {
      const report = await collectStatus(env, cluster.controlPlaneUrl, 2000);
      const lagging: string[] = [];
      for (const v of report.volumes) {
        for (const pg of v.pgs) {
          const scls = pg.segments.map((s) => {
            const node = report.nodes.find((n) => n.nodeId === s.nodeId);
            if (node === undefined || !node.state.reachable) return -1;
            const seg = node.state.segments.find((x) => x.geometry.volumeId === v.volumeId && x.geometry.pgId === pg.pgId);
            return seg === undefined ? -1 : seg.scl;
          });
          const max = Math.max(...scls);
          if (scls.some((s) => s !== max)) lagging.push(`pg ${pg.pgId}: ${scls.join("/")}`);
        }
      }
      if (lagging.length === 0) return { converged: true, ms: Math.round(performance.now() - started) };
      detail = lagging.slice(0, 5).join("; ");
    } catch (e) {
      detail = errorText(e);
    }
    await sleep(500);
  }
  return { converged: false, ms: Math.round(performance.now() - started), detail };
}

async function retry<T>(attempts: number, delayMs: number, fn: () => Promise<T>): Promise<T> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await fn();
    } catch (e) {
      last = e;
      await sleep(delayMs);
    }
  }
  throw last;
}
