/**
 * Shared helpers for the engine tests: an engine over a MemoryVolume, tagged-value shorthands and a
 * one-liner to run a statement.
 */
import { Engine, type EngineOptions } from "../../src/compute/engine/engine.js";
import { MemoryVolume, type MemoryVolumeOptions } from "../../src/compute/memory-volume.js";
import type { SqlSession, SqlValue, StatementResult } from "../../src/compute/sql-engine.js";
import { freshLsnState } from "../../src/compute/volume-io.js";

export const PG_PAGES = 64;

export interface Rig {
  readonly volume: MemoryVolume;
  readonly engine: Engine;
}

export async function startRig(
  volumeOptions: MemoryVolumeOptions = {},
  engineOptions: Partial<EngineOptions> = {},
  volume = new MemoryVolume({ pgPages: PG_PAGES, ...volumeOptions }),
): Promise<Rig> {
  const engine = await Engine.start({
    volume,
    lsnState: volume.vdl() === 0 && volume.mtrs().length === 0 ? freshLsnState() : volume.lsnState(),
    pgPages: PG_PAGES,
    readers: 2,
    cacheMb: 16,
    shipPageImages: true,
    busyTimeoutMs: 2000,
    ...engineOptions,
  });
  return { volume, engine };
}

export const int = (n: number | bigint): SqlValue => ({ type: "integer", value: BigInt(n) });
export const float = (n: number): SqlValue => ({ type: "float", value: n });
export const text = (s: string): SqlValue => ({ type: "text", value: s });
export const blob = (b: Uint8Array): SqlValue => ({ type: "blob", value: b });
export const NULL: SqlValue = { type: "null" };

export function run(s: SqlSession, sql: string, ...args: SqlValue[]): Promise<StatementResult> {
  return s.execute({ sql, args });
}

/** Rows as plain JS values (bigint, number, string, Uint8Array, null). */
export function plain(r: StatementResult): unknown[][] {
  return r.rows.map((row) => row.map((v) => (v.type === "null" ? null : v.value)));
}

export async function scalar(s: SqlSession, sql: string, ...args: SqlValue[]): Promise<unknown> {
  return plain(await run(s, sql, ...args))[0]?.[0];
}
