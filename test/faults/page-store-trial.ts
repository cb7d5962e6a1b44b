/**
 * One trial of the page-store corruption test (page-store-corruption.test.ts), run in a child process
 * because a damaged LMDB file can crash the process that opens it (that is a refusal, not a wrong
 * answer). A storage node with the real LMDB store takes a few hundred records over a dozen pages and
 * sorts and materializes them; it is closed; 1–8 random bytes of `pages/data.mdb` are flipped, as
 * bit rot at rest would; it reopens and every page is read at several read points. Prints one JSON
 * line: { seed, outcome: "ok" | "refused-open" | "refused-reads" | "wrong", wrong: [...] }.
 */
import { open as openFile, stat } from "node:fs/promises";
import * as path from "node:path";
import { isBorealisError } from "../../src/core/errors.js";
import { Lsn, PageNo } from "../../src/core/types.js";
import { StorageNode } from "../../src/storage/storage-node.js";
import { ModelWriter, epochs1, geometry, keyOf, modelPage, nodeConfig, prng, tempDir, testEnv } from "../storage/helpers.js";

export async function pageStoreTrial(seed: number): Promise<void> {
  const { dir, cleanup } = await tempDir("borealis-corrupt-");
  const result: { seed: number; outcome: string; wrong: string[]; refusals: number; reads: number; flips: number } = {
    seed, outcome: "ok", wrong: [], refusals: 0, reads: 0, flips: 0,
  };
  try {
    const config = nodeConfig(dir, { materializeThreshold: 4 });
    const env = testEnv();
    let node = await StorageNode.open(env, config);
    const g = geometry("vol", 0, 1, 12, 512);
    const key = keyOf(g);
    const w = new ModelWriter(g);
    const rand = prng(seed);
    await node.handle({ type: "openSegment", geometry: g, epochs: epochs1 });
    const records = [];
    for (let i = 0; i < 400; i++) records.push(w.next(rand, 1 + rand.int(12), { full: rand.int(12) === 0 }));
    for (let i = 0; i < records.length; i += 20) {
      const batch = records.slice(i, i + 20);
      await node.handle({ type: "writeBatch", key, epochs: epochs1, writerVdl: batch[batch.length - 1]!.lsn, records: batch });
    }
    await node.handle({ type: "writeBatch", key, epochs: epochs1, writerVdl: records[records.length - 1]!.lsn, records: [] });
    await node.runBackgroundUntilIdle();
    await node.close();

    const file = path.join(dir, "pages", "data.mdb");
    const size = (await stat(file)).size;
    const fh = await openFile(file, "r+");
    result.flips = 1 + rand.int(8);
    for (let i = 0; i < result.flips; i++) {
      const at = rand.int(size);
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, at);
      b[0] = b[0]! ^ (1 + rand.int(255));
      await fh.write(b, 0, 1, at);
    }
    await fh.sync();
    await fh.close();

    try {
      node = await StorageNode.open(env, config);
    } catch {
      result.outcome = "refused-open";
      return;
    }
    try {
      let scl: number;
      try {
        const s = await node.handle({ type: "getSegmentState", key, epochs: epochs1 });
        scl = s.type === "segmentState" ? s.state.scl : 0;
      } catch {
        result.outcome = "refused-reads";
        return;
      }
      const held = records.filter((r) => r.lsn <= scl);
      for (let page = 1; page <= 12; page++) {
        for (const readPoint of new Set([scl, Math.floor(scl / 2), Math.floor(scl * 0.8), Math.floor(scl / 5)])) {
          if (readPoint < 1) continue;
          result.reads++;
          try {
            const got = await node.handle({ type: "getPage", key, epochs: epochs1, pageNo: PageNo(page), readPoint: Lsn(readPoint), minScl: Lsn(readPoint) });
            if (got.type !== "page") throw new Error(`getPage answered ${got.type}`);
            const want = modelPage(held, page, readPoint, g.pageSize);
            if (got.pageLsn !== want.pageLsn || !Buffer.from(got.bytes).equals(Buffer.from(want.bytes))) {
              result.wrong.push(`page ${page} at ${readPoint}: page LSN ${got.pageLsn}, model ${want.pageLsn}${got.pageLsn === want.pageLsn ? ", bytes differ" : ""}`);
            }
          } catch (e) {
            if (!isBorealisError(e)) throw e;
            result.refusals++;
          }
        }
      }
      result.outcome = result.wrong.length > 0 ? "wrong" : result.refusals > 0 ? "refused-reads" : "ok";
    } finally {
      await node.close().catch(() => {});
    }
  } finally {
    await cleanup();
    process.stdout.write(JSON.stringify(result) + "\n");
  }
}
