import { test } from "node:test";
import assert from "node:assert/strict";
import { SimWorld } from "../../src/sim/world.js";
import { SeededRandom } from "../../src/sim/random.js";
import { calmDisk } from "../../src/sim/sim-disk.js";

test("the same seed draws the same numbers; different seeds differ", () => {
  const a = new SeededRandom(42), b = new SeededRandom(42), c = new SeededRandom(43);
  const xs = Array.from({ length: 100 }, () => a.u32());
  assert.deepEqual(xs, Array.from({ length: 100 }, () => b.u32()));
  assert.notDeepEqual(xs, Array.from({ length: 100 }, () => c.u32()));
  for (let i = 0; i < 1000; i++) {
    const f = a.float();
    assert.ok(f >= 0 && f < 1);
  }
});

test("synced bytes survive a crash; an fsync error loses what it covered even if a later fsync succeeds", async () => {
  const world = new SimWorld(7);
  const p = world.process("n1", { ...calmDisk, crashLoseRate: 1, crashTearRate: 0 });
  const env = p.start();
  const s = world.scheduler;
  await s.until((async () => {
    await env.disk.mkdirp("/d");
    const f = await env.disk.open("/d/f", { create: true });
    await env.disk.syncDir("/d");
    await f.write(0, new Uint8Array([1, 2, 3]));
    await f.sync();
    await f.write(3, new Uint8Array([4, 5]));
  })());
  p.kill();
  const env2 = p.start();
  const bytes = await s.until(env2.disk.readFile("/d/f"));
  assert.deepEqual([...bytes], [1, 2, 3]);

  p.disk.faults = { ...p.disk.faults, syncErrorRate: 1 };
  await s.until((async () => {
    const f = await env2.disk.open("/d/f", { create: false });
    await f.write(3, new Uint8Array([9]));
    await assert.rejects(f.sync(), /EIO/);
    p.disk.faults = { ...p.disk.faults, syncErrorRate: 0 };
    await f.sync(); // "succeeds", but the write it failed to flush is gone
    assert.deepEqual([...(await env2.disk.readFile("/d/f"))], [1, 2, 3, 9], "the page cache still shows it");
  })());
  p.kill();
  const env3 = p.start();
  assert.deepEqual([...(await s.until(env3.disk.readFile("/d/f")))], [1, 2, 3]);
});

test("a killed process hears nothing more and a run replays to the same trace hash", async () => {
  async function run(seed: number): Promise<string> {
    const world = new SimWorld(seed);
    const server = world.process("srv");
    const client = world.process("cli");
    const senv = server.start();
    const cenv = client.start();
    let received = 0;
    await world.scheduler.until(senv.network.listen({ host: "srv", port: 1 }, (c) => {
      c.onData((b) => { received += b.byteLength; world.trace("recv", { n: b.byteLength }); c.write(b); });
    }));
    const conn = await world.scheduler.until(cenv.network.connect({ host: "srv", port: 1 }));
    let echoed = 0;
    conn.onData((b) => { echoed += b.byteLength; });
    for (let i = 0; i < 20; i++) conn.write(new Uint8Array(1 + world.random.int(50)));
    await world.scheduler.run({ untilMs: 50 });
    assert.equal(echoed, received);
    server.kill();
    conn.write(new Uint8Array(10));
    const before = received;
    await world.scheduler.run({ untilMs: 100 });
    assert.equal(received, before, "a dead process receives nothing");
    return world.traceHash();
  }
  assert.equal(await run(5), await run(5));
  assert.notEqual(await run(5), await run(6));
});
