/** Shared fixtures for control-plane tests: a temp directory, a quiet env, a clock the test moves. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Clock, Env, Timer } from "../../src/env/env.js";
import { realEnv, silentLogger } from "../../src/env/real.js";

export async function tempDir(prefix = "borealis-cp-"): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface ManualClock extends Clock {
  advance(ms: number): void;
}

/** Time moves only when the test says so; timers are not used by the control plane core. */
export function manualClock(startMs = 1000): ManualClock {
  let now = startMs;
  return {
    nowMs: () => now,
    wallMs: () => 1_700_000_000_000 + now,
    setTimer: (): Timer => ({ cancel: () => {} }),
    sleep: async () => {},
    advance: (ms: number) => { now += ms; },
  };
}

export function quietEnv(overrides: Partial<Env> = {}): Env {
  return { ...realEnv({ log: silentLogger }), ...overrides };
}
