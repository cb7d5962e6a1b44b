/**
 * Address rules shared by the commands. Everything listens on loopback for now: neither the storage
 * protocol nor the control plane's API authenticates its callers yet (roadmap 5), so exposing them
 * beyond the machine would let anyone write to a volume or fence its writer.
 */
import { isLoopbackHost } from "../control-plane/http-server.js";
import { formatHostPort, type HostPort } from "../core/types.js";

export function requireLoopback(hp: HostPort): HostPort {
  if (!isLoopbackHost(hp.host)) {
    throw new Error(`${formatHostPort(hp)} is not a loopback address; Borealis listens on 127.0.0.1 or ::1 only until it authenticates its peers`);
  }
  return hp;
}
