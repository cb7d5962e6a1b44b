/**
 * Borealis through a lean client: the same server as the "Borealis" row (one `borealis up`, shared
 * when both rows run: see `acquireCluster` in borealis.ts), spoken to by `HranaClient`
 * (hrana-client.ts: Hrana v2 JSON over a keep-alive `node:http` socket) instead of @libsql/client.
 *
 * Why a second row: @libsql/client 0.18 spends ~1.7–2 ms of CPU per operation in the client process
 * (undici fetch, web streams), ~15× what node-postgres spends; on a machine where clients and servers
 * share the cores, the client library alone caps Borealis near 1,000 ops/s. The two rows differ only
 * in the client: the gap between them is the library's cost, and this row is the server's.
 *
 * Load generators load only this module and hrana-client.ts (borealis.ts, and with it
 * @libsql/client, is imported when the harness starts the cluster), so their memory and start-up are
 * this client's own.
 */
import { assert } from "../../src/core/assert.js";
import { HranaClient } from "./hrana-client.js";
import type { BenchConnection, BenchSystem, ClientSpec, RunningSystem, StartContext } from "./system.js";

export const borealisHranaSystem: BenchSystem = {
  name: "borealis-hrana",
  title: "Borealis (lean Hrana client)",
  clientModel: "network",
  clientLibrary: "lean Hrana v2 client (bench/systems/hrana-client.ts: node:http keep-alive, JSON)",

  async start(ctx: StartContext): Promise<RunningSystem> {
    const { acquireCluster } = await import("./borealis.js");
    const cluster = await acquireCluster(ctx);
    return {
      ...cluster,
      clientSpec: { ...cluster.clientSpec, system: "borealis-hrana" },
      settings: {
        ...cluster.settings,
        client: "POST /v2/pipeline from node:http, one keep-alive socket per client; same round trips as @libsql/client",
        cluster: "the Borealis row's `borealis up` when both rows run (one server, two client models)",
      },
    };
  },

  async connect(spec: ClientSpec): Promise<BenchConnection> {
    assert(spec.system === "borealis-hrana" && typeof spec.url === "string", "borealis-hrana: bad client spec");
    return new HranaClient(spec.url);
  },
};
