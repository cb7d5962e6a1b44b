/**
 * How long-running commands (`control-plane`, `storage-node`, `up`) learn that they should stop.
 *
 * The first SIGINT or SIGTERM starts a clean shutdown; a second one, while that shutdown is still
 * running, exits at once (the operator has decided not to wait). A process started by `borealis up`
 * also stops when its parent's IPC channel closes, so a supervisor that was itself killed hard does
 * not leave storage nodes running without anyone to stop them.
 */
import { err } from "./command.js";

export interface ShutdownTrigger {
  /** Resolves with what asked for the shutdown: "SIGINT", "SIGTERM" or "parent-exited". */
  readonly requested: Promise<string>;
  /** Aborted when shutdown is requested, for waits that should stop early. */
  readonly signal: AbortSignal;
  dispose(): void;
}

export function onShutdown(what: string): ShutdownTrigger {
  const controller = new AbortController();
  let resolve!: (reason: string) => void;
  const requested = new Promise<string>((r) => { resolve = r; });
  let count = 0;

  const trigger = (reason: string): void => {
    count++;
    if (count === 1) {
      controller.abort(new Error(`shutdown requested (${reason})`));
      resolve(reason);
      return;
    }
    if (reason !== "parent-exited") {
      err(`${what}: second ${reason}; exiting without waiting for a clean shutdown`);
      process.exit(130);
    }
  };
  const onSigint = (): void => trigger("SIGINT");
  const onSigterm = (): void => trigger("SIGTERM");
  const onDisconnect = (): void => trigger("parent-exited");
  process.on("SIGINT", onSigint);
  process.on("SIGTERM", onSigterm);
  if (process.channel !== undefined) {
    // The channel exists only to notice the parent going away; it must not keep this process alive.
    process.channel.unref();
    process.on("disconnect", onDisconnect);
  }
  return {
    requested,
    signal: controller.signal,
    dispose: () => {
      process.off("SIGINT", onSigint);
      process.off("SIGTERM", onSigterm);
      process.off("disconnect", onDisconnect);
    },
  };
}
