/**
 * The writer: one volume's SQL engine over the storage cluster, behind a libSQL (Hrana over HTTP)
 * endpoint. `borealis writer` and `borealis up` run it.
 *
 * Start-up, in order, each step before anything is served:
 *   1. find the volume in the control plane, creating it on first start;
 *   2. recover it (invariant 8, volume/recovery.ts): new epoch, VDL from read quorums, annul above it;
 *   3. start the volume client (volume/volume-writer.ts) from the recovered durable point;
 *   4. start SQLite's workers over it (engine/engine.ts) with the recovered LSN state;
 *   5. listen for clients, then record this writer (endpoint, epoch) in the control plane.
 *
 * Start-up time is the writer's restart time (DESIGN.md target ≤ 1 s, flat in log length); each step's
 * duration is logged and reported by `GET /health`. `GET /metrics` serves the writer's cumulative
 * counters (redo, commits, storage traffic; writer-metrics.ts).
 */
import type { Env } from "../env/env.js";
import { BorealisError, isBorealisError } from "../core/errors.js";
import type { HostPort, VolumeId } from "../core/types.js";
import type { ControlPlaneApi, Volume } from "../control-plane/api.js";
import { startHranaServer, type HranaServer } from "../endpoint/hrana-http.js";
import { Engine } from "./engine/engine.js";
import { collectWriterMetrics } from "./writer-metrics.js";
import { NodePool } from "./volume/node-pool.js";
import { recoverVolume, type RecoveryReport } from "./volume/recovery.js";
import { VolumeWriter } from "./volume/volume-writer.js";

export interface WriterOptions {
  readonly controlPlane: ControlPlaneApi;
  readonly volumeId: VolumeId;
  readonly listen: HostPort;
  /** Identifies this writer to storage nodes (logs). */
  readonly writerId?: string;
  /** Pages per protection group when the volume is created here. Default: the control plane's. */
  readonly pgPages?: number;
  /** Shared buffer pool (`--cache-mb`). Default 256. */
  readonly cacheMb?: number;
  readonly readers?: number;
  /** LSN allocation limit (invariant 6). Default: the engine's. */
  readonly lal?: number;
  readonly commitTimeoutMs?: number;
  /** How long to wait for the volume to become placeable / recoverable (nodes still starting). */
  readonly startTimeoutMs?: number;
  /** Idle Hrana stream expiry. Default 10 s. */
  readonly idleStreamTimeoutMs?: number;
}

export interface StartupTimings {
  readonly volumeMs: number;
  readonly recoveryMs: number;
  readonly engineMs: number;
  readonly totalMs: number;
}

export interface RunningWriter {
  readonly url: string;
  readonly address: HostPort;
  readonly volume: Volume;
  readonly recovery: RecoveryReport;
  readonly timings: StartupTimings;
  readonly engine: Engine;
  readonly volumeWriter: VolumeWriter;
  close(): Promise<void>;
}

export async function runWriter(env: Env, options: WriterOptions): Promise<RunningWriter> {
  const log = env.log.child({ component: "writer", volume: options.volumeId });
  const t0 = env.clock.nowMs();
  const deadline = t0 + (options.startTimeoutMs ?? 30_000);

  const volume = await openOrCreateVolume(env, options, deadline);
  const t1 = env.clock.nowMs();

  const pool = new NodePool(env, { senderId: options.writerId ?? `writer-${options.volumeId}` });
  let volumeWriter: VolumeWriter | undefined;
  let engine: Engine | undefined;
  let server: HranaServer | undefined;
  try {
    const recovered = await recoverVolume({
      env, controlPlane: options.controlPlane, pool, volumeId: volume.volumeId,
      timeoutMs: Math.max(1000, deadline - env.clock.nowMs()),
    });
    const t2 = env.clock.nowMs();
    volumeWriter = new VolumeWriter({
      env, pool, controlPlane: options.controlPlane, volume: recovered.volume, epoch: recovered.epoch,
      annulments: recovered.annulments, trackerStart: recovered.trackerStart,
      ...(options.commitTimeoutMs !== undefined ? { commitTimeoutMs: options.commitTimeoutMs } : {}),
    });
    engine = await Engine.start({
      volume: volumeWriter,
      lsnState: recovered.lsnState,
      pgPages: recovered.volume.pgPages,
      log,
      ...(options.cacheMb !== undefined ? { cacheMb: options.cacheMb } : {}),
      ...(options.readers !== undefined ? { readers: options.readers } : {}),
      ...(options.lal !== undefined ? { lal: options.lal } : {}),
    });
    const t3 = env.clock.nowMs();
    const timings: StartupTimings = {
      volumeMs: Math.round(t1 - t0), recoveryMs: Math.round(t2 - t1), engineMs: Math.round(t3 - t2), totalMs: Math.round(t3 - t0),
    };
    const vw = volumeWriter;
    const eng = engine;
    server = await startHranaServer(env, engine, {
      listen: options.listen,
      ...(options.idleStreamTimeoutMs !== undefined ? { idleStreamTimeoutMs: options.idleStreamTimeoutMs } : {}),
      health: async () => {
        const status = vw.status();
        const commitsStopped = eng.commitsStoppedBy();
        return {
          // Not ok once the engine refuses every write (WRITER_FENCED), whatever stopped it.
          ok: status.fenced === undefined && commitsStopped === null,
          role: "writer",
          volume: volume.volumeId,
          epoch: status.epoch,
          vdl: status.vdl,
          vcl: status.vcl,
          waitingCommits: status.waitingCommits,
          fenced: status.fenced ?? null,
          commitsStopped,
          startup: timings,
          recovery: recovered.report,
          volumeStats: vw.stats(),
          engine: await eng.stats(),
          pgs: status.pgs,
        };
      },
      metrics: () => collectWriterMetrics({
        volumeWriter: vw, pool, commits: () => eng.commitsAcknowledged(),
        truncation: { vdl: recovered.report.vdl, firstNewLsn: recovered.lsnState.nextLsn }, pid: process.pid,
      }),
    });
    await options.controlPlane.setWriter({ volumeId: volume.volumeId, endpoint: server.url, epoch: recovered.epoch });
    log.info("writer-serving", { url: server.url, epoch: recovered.epoch, vdl: recovered.report.vdl, ...timings });
    const srv = server;
    let closing: Promise<void> | undefined;
    return {
      url: server.url, address: server.address, volume: recovered.volume, recovery: recovered.report, timings, engine, volumeWriter,
      close: () => {
        closing ??= (async () => {
          await srv.close();
          await eng.close();
          vw.close();
          pool.close();
        })();
        return closing;
      },
    };
  } catch (e) {
    await server?.close().catch(() => {});
    await engine?.close().catch(() => {});
    volumeWriter?.close();
    pool.close();
    throw e;
  }
}

/** The volume, created on first start; retried while the storage nodes are still registering. */
async function openOrCreateVolume(env: Env, options: WriterOptions, deadline: number): Promise<Volume> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await options.controlPlane.getVolume(options.volumeId);
    } catch (e) {
      if (!isBorealisError(e, "VOLUME_NOT_FOUND")) throw e;
    }
    try {
      const created = await options.controlPlane.createVolume({
        volumeId: options.volumeId, ...(options.pgPages !== undefined ? { pgPages: options.pgPages } : {}),
      });
      env.log.info("volume-created", { volume: created.volumeId, pgPages: created.pgPages, pageSize: created.pageSize });
      return created;
    } catch (e) {
      if (isBorealisError(e, "CONFLICT")) continue; // created by someone else meanwhile: read it
      if (!isBorealisError(e, "PLACEMENT_IMPOSSIBLE") || env.clock.nowMs() > deadline) {
        throw e instanceof BorealisError ? new BorealisError(e.code, `create volume ${options.volumeId}: ${e.message}`, e.details) : e;
      }
      await env.clock.sleep(Math.min(500, 50 * 2 ** Math.min(attempt, 4)));
    }
  }
}
