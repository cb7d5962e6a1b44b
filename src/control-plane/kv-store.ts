/**
 * The control plane's storage seam: a small, strongly consistent key-value store with etcd's shape.
 *
 * Everything the control plane keeps (node registrations, volumes, epochs, the writer record) is a JSON
 * string under a key. Updates are compare-and-set on a revision so that two control-plane processes
 * sharing one store (etcd, roadmap 2) can never both win a race: a volume epoch bump or a placement
 * decision either lands on the version it was computed from or fails with `CONFLICT` and is retried
 * from a fresh read.
 *
 * Revisions follow etcd: one global counter, bumped by every successful change; each entry remembers
 * the revision that last modified it (`revision`, etcd's `mod_revision`). A revision is never reused.
 *
 * Implementations: `embedded-kv.ts` (one process, one file; the default). etcd comes later.
 */

export interface KvEntry {
  readonly key: string;
  /** A JSON document; the store itself does not look inside it. */
  readonly value: string;
  /** The global revision of the change that last wrote this key. */
  readonly revision: number;
}

/**
 * A put's precondition: the key's current revision must equal this number, or with `"absent"` the key
 * must not exist. A mismatch rejects with `BorealisError("CONFLICT")` and changes nothing.
 */
export type ExpectRevision = number | "absent";

export interface KvPutOptions {
  readonly expectRevision?: ExpectRevision;
}

export interface KvDeleteOptions {
  /** Delete only when the key's revision equals this one (CONFLICT otherwise). */
  readonly expectRevision?: number;
}

export interface KvListOptions {
  /** At most this many entries (in key order); implementations also apply their own bound. */
  readonly limit?: number;
}

export interface KvStore {
  get(key: string): Promise<KvEntry | null>;
  /** Writes `value` under `key` and resolves with the new revision. */
  put(key: string, value: string, options?: KvPutOptions): Promise<number>;
  /** Removes `key`; resolves false when it did not exist (and no `expectRevision` was given). */
  delete(key: string, options?: KvDeleteOptions): Promise<boolean>;
  /** Entries whose key starts with `prefix`, in key order. */
  list(prefix: string, options?: KvListOptions): Promise<KvEntry[]>;
  /** The store's current global revision. */
  revision(): Promise<number>;
  /** Waits for queued writes, then refuses further calls. */
  close(): Promise<void>;
}

/** Bounds every implementation enforces, so a bug or a hostile caller cannot grow the store without limit. */
export const KV_LIMITS = {
  maxKeyBytes: 512,
  maxValueBytes: 4 * 1024 * 1024,
  maxEntries: 100_000,
} as const;
