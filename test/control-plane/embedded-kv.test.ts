import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile, readdir } from "node:fs/promises";
import * as path from "node:path";
import { isBorealisError } from "../../src/core/errors.js";
import { EmbeddedKv } from "../../src/control-plane/embedded-kv.js";
import { KV_LIMITS } from "../../src/control-plane/kv-store.js";
import { realDisk } from "../../src/env/real.js";
import { quietEnv, tempDir } from "./helpers.js";

const isCode = (code: Parameters<typeof isBorealisError>[1]) => (e: unknown) => isBorealisError(e, code);

test("put and get; revisions are global and strictly increase", async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const kv = await EmbeddedKv.open(quietEnv(), dir);
  assert.equal(await kv.get("a"), null);
  assert.equal(await kv.revision(), 0);
  const r1 = await kv.put("a", '{"x":1}');
  const r2 = await kv.put("b", '{"x":2}');
  const r3 = await kv.put("a", '{"x":3}');
  assert.deepEqual([r1, r2, r3], [1, 2, 3]);
  assert.deepEqual(await kv.get("a"), { key: "a", value: '{"x":3}', revision: 3 });
  assert.deepEqual(await kv.get("b"), { key: "b", value: '{"x":2}', revision: 2 });
  assert.equal(await kv.revision(), 3);
  await kv.close();
});

test("compare-and-set: expectRevision and \"absent\"", async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const kv = await EmbeddedKv.open(quietEnv(), dir);
  const r1 = await kv.put("k", "1", { expectRevision: "absent" });
  await assert.rejects(kv.put("k", "2", { expectRevision: "absent" }), isCode("CONFLICT"));
  await assert.rejects(kv.put("k", "2", { expectRevision: r1 + 5 }), isCode("CONFLICT"));
  await assert.rejects(kv.put("missing", "2", { expectRevision: 1 }), isCode("CONFLICT"));
  const r2 = await kv.put("k", "2", { expectRevision: r1 });
  assert.ok(r2 > r1);
  // A failed compare-and-set changes nothing, not even the revision.
  assert.equal(await kv.revision(), r2);
  assert.equal((await kv.get("k"))?.value, "2");
  // Two racing writers on the same revision: exactly one wins.
  const results = await Promise.allSettled([
    kv.put("k", "x", { expectRevision: r2 }), kv.put("k", "y", { expectRevision: r2 }),
  ]);
  assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
  assert.equal(results.filter((r) => r.status === "rejected" && isBorealisError(r.reason, "CONFLICT")).length, 1);
  await kv.close();
});

test("delete, conditional delete and list by prefix", async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const kv = await EmbeddedKv.open(quietEnv(), dir);
  await kv.put("nodes/n2", "2");
  await kv.put("nodes/n1", "1");
  const rv = await kv.put("volumes/v", "v");
  assert.deepEqual((await kv.list("nodes/")).map((e) => e.key), ["nodes/n1", "nodes/n2"]);
  assert.deepEqual((await kv.list("nodes/", { limit: 1 })).map((e) => e.key), ["nodes/n1"]);
  assert.equal((await kv.list("")).length, 3);
  assert.equal(await kv.delete("nope"), false);
  await assert.rejects(kv.delete("volumes/v", { expectRevision: rv + 1 }), isCode("CONFLICT"));
  assert.equal(await kv.delete("volumes/v", { expectRevision: rv }), true);
  assert.equal(await kv.get("volumes/v"), null);
  assert.equal(await kv.delete("nodes/n1"), true);
  assert.deepEqual((await kv.list("")).map((e) => e.key), ["nodes/n2"]);
  await kv.close();
});

test("state and revision survive close and reopen; revisions are never reused", async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const kv = await EmbeddedKv.open(quietEnv(), dir);
  await kv.put("a", "1");
  const rb = await kv.put("b", "2");
  await kv.delete("a");
  const revisionBefore = await kv.revision();
  await kv.close();
  await assert.rejects(kv.get("b"), isCode("SHUTTING_DOWN"));

  const again = await EmbeddedKv.open(quietEnv(), dir);
  assert.equal(await again.get("a"), null);
  assert.deepEqual(await again.get("b"), { key: "b", value: "2", revision: rb });
  assert.equal(await again.revision(), revisionBefore);
  assert.equal(await again.put("c", "3"), revisionBefore + 1);
  await assert.rejects(again.put("b", "x", { expectRevision: rb - 1 }), isCode("CONFLICT"));
  await again.close();
});

test("leftover temp files are removed on open; a corrupt file is reported, not ignored", async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const kv = await EmbeddedKv.open(quietEnv(), dir);
  await kv.put("a", "1");
  await kv.close();
  await writeFile(path.join(dir, "kv.json.tmp-12345"), "half a file");
  const reopened = await EmbeddedKv.open(quietEnv(), dir);
  assert.deepEqual(await readdir(dir), ["kv.json"]);
  await reopened.close();

  await writeFile(path.join(dir, "kv.json"), "{ not json");
  await assert.rejects(EmbeddedKv.open(quietEnv(), dir), (e) => isBorealisError(e, "CORRUPT_DATA") && /kv\.json/.test(e.message));
  await writeFile(path.join(dir, "kv.json"), JSON.stringify({ format: "borealis-kv", version: 1, revision: 1, entries: [{ k: "a", v: "1", r: 7 }] }));
  await assert.rejects(EmbeddedKv.open(quietEnv(), dir), isCode("CORRUPT_DATA"));
});

test("a failed file write is COMMIT_OUTCOME_UNKNOWN, changes nothing visible, and burns its revision", async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  let failNext = false;
  const disk = {
    ...realDisk,
    writeFileAtomic: async (p: string, bytes: Uint8Array) => {
      if (failNext) {
        failNext = false;
        throw new Error("EIO: injected");
      }
      return realDisk.writeFileAtomic(p, bytes);
    },
  };
  const kv = await EmbeddedKv.open(quietEnv({ disk }), dir);
  const r1 = await kv.put("a", "1");
  failNext = true;
  await assert.rejects(kv.put("a", "2"), isCode("COMMIT_OUTCOME_UNKNOWN"));
  assert.deepEqual(await kv.get("a"), { key: "a", value: "1", revision: r1 });
  const r3 = await kv.put("b", "3");
  assert.equal(r3, r1 + 2, "the failed write's revision is not handed out again");
  await kv.close();
  const again = await EmbeddedKv.open(quietEnv(), dir);
  assert.equal((await again.get("a"))?.value, "1");
  await again.close();
});

test("bounds: key and value sizes are checked", async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const kv = await EmbeddedKv.open(quietEnv(), dir);
  await assert.rejects(kv.put("", "x"), isCode("INVALID_ARGUMENT"));
  await assert.rejects(kv.put("k".repeat(KV_LIMITS.maxKeyBytes + 1), "x"), isCode("INVALID_ARGUMENT"));
  await assert.rejects(kv.put("k", "v".repeat(KV_LIMITS.maxValueBytes + 1)), isCode("INVALID_ARGUMENT"));
  assert.equal(await kv.revision(), 0);
  await kv.close();
});
