/**
 * The server half of `wire-bench.ts`, run as a child process so that client and server each have their
 * own event loop, as a writer and a storage node do. It answers writeBatch with writeAck at once (no
 * disk): what is measured is framing, checksums, record decoding and the RPC layer. It tells its parent
 * the port it bound and exits when the parent goes away.
 */
import { Lsn } from "../src/core/types.js";
import { realEnv, silentLogger } from "../src/env/real.js";
import { RpcServer } from "../src/wire/rpc-server.js";

const env = realEnv({ log: silentLogger });
const server = new RpcServer(env, {
  nodeId: "bench-server",
  az: "az-bench",
  handler: async (req) => {
    switch (req.type) {
      case "writeBatch": return { type: "writeAck", scl: req.records.length > 0 ? req.records[req.records.length - 1]!.lsn : Lsn(0) };
      case "ping": return { type: "pong" };
      default: throw new Error(`the bench server does not serve ${req.type}`);
    }
  },
});
const address = await server.listen({ host: "127.0.0.1", port: 0 });
process.send?.({ port: address.port });
process.on("disconnect", () => {
  void server.close().then(() => process.exit(0));
});
