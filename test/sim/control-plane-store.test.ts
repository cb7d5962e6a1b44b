/**
 * The control plane's embedded store on the simulated disk: what it loads after a kill -9 must be
 * durable before it serves it (found by the simulator, `--faults crash-control-plane`, seed 1000).
 *
 * The story: the store renames its new file into place and the process dies before the directory
 * fsync. The rename survives a kill -9 (the kernel still has it), so the restarted store reads the new
 * state — a recovery record — and serves it to the next writer, which applies that recovery's
 * annulment to segments. A power loss then reverts the directory to its last fsync: the record is
 * gone, and a segment that missed that recovery would never learn its annulment. Fix: `open` fsyncs
 * the file and the directory before it serves anything.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Disk } from "../../src/env/env.js";
import { EmbeddedKv } from "../../src/control-plane/embedded-kv.js";
import { SimWorld } from "../../src/sim/world.js";

/** A disk whose writeFileAtomic stops (forever) right after the rename, before the directory fsync. */
function dyingBeforeDirSync(disk: Disk): Disk {
  return new Proxy(disk, {
    get(target, prop, receiver) {
      if (prop === "writeFileAtomic") {
        return async (p: string, bytes: Uint8Array): Promise<void> => {
          const f = await target.open(`${p}.tmp`, { create: true });
          await f.truncate(0);
          await f.write(0, bytes);
          await f.sync();
          await f.close();
          await target.rename(`${p}.tmp`, p);
          await new Promise<void>(() => {}); // killed here
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

test("a control-plane store reopened after kill -9 makes what it loaded durable before serving it", async () => {
  // The crash keeps or reverts an unsynced directory at random: try enough seeds to see both.
  for (let seed = 1; seed <= 24; seed++) {
    const world = new SimWorld(seed);
    const s = world.scheduler;
    const p = world.process("cp");
    const env = p.start();
    const kv = await s.until(EmbeddedKv.open(env, "/cp"));
    await s.until(kv.put("volumes/v", "epoch 1"));

    // The next write dies between the rename and the directory fsync.
    const dying = await s.until(EmbeddedKv.open({ ...env, disk: dyingBeforeDirSync(env.disk) }, "/cp"));
    void dying.put("volumes/v", "epoch 2 and its recovery").catch(() => {});
    await s.run({ untilMs: s.now() + 50 });
    p.kill({ crashDisk: false });

    // kill -9 only: the rename is there, and the restarted store serves it.
    const env2 = p.start();
    const kv2 = await s.until(EmbeddedKv.open(env2, "/cp"));
    assert.equal((await s.until(kv2.get("volumes/v")))?.value, "epoch 2 and its recovery", `seed ${seed}: the rename survived kill -9`);

    // Then a power loss: what was served must still be there.
    p.kill({ crashDisk: true });
    const env3 = p.start();
    const kv3 = await s.until(EmbeddedKv.open(env3, "/cp"));
    assert.equal((await s.until(kv3.get("volumes/v")))?.value, "epoch 2 and its recovery", `seed ${seed}: served state survived a power loss`);
  }
});
