/**
 * Quorum sets over a protection group's segments: who must acknowledge a write, who must answer a
 * read, and the highest LSN a write quorum holds (PGCL). Pure functions over plain values; no I/O.
 *
 * A **simple** set is Aurora's 4-of-6 write / 3-of-6 read over the six segments of a PG (two per AZ),
 * so that losing any two segments (an AZ) keeps writes, and losing an AZ plus one keeps reads
 * (invariant 12). Sizes are configurable for tests and for Aurora's 3/4 mode during a long AZ loss,
 * but every set must satisfy the two overlap rules that make quorums mean anything:
 *   - w + r > n: every read quorum meets every write quorum, so recovery sees every durable record;
 *   - 2w > n:   two write quorums always meet, so a fenced writer cannot complete a write unseen.
 *
 * A **transition** set (invariant 11, [P18] §4.1) is a list of simple configs: a write needs a write
 * quorum of EVERY config, a read a read quorum of ANY config. Replacing F by G turns ABCDEF into
 * {ABCDEF, ABCDEG}; a second replacement E→H during the first multiplies the configs
 * ({ABCDEF, ABCDEG, ABCDHF, ABCDHG}), and writing ABCD still satisfies them all. Each step is
 * reversible: `finishReplacement(…, "revert")` drops the configs with the incoming member,
 * `"commit"` those with the outgoing one. The membership epoch that numbers each step lives with the
 * caller (control plane); this module only does the set algebra.
 *
 * Invalid sets are operating errors (they come from configuration or the control plane):
 * `BorealisError("INVALID_ARGUMENT")`. Broken internal arithmetic is asserted.
 */
import { assert, isSafeUint } from "../core/assert.js";
import { BorealisError } from "../core/errors.js";
import { Lsn, NO_LSN, type NodeId } from "../core/types.js";

/** The shape of a simple set: how many members, how many make a write and a read quorum. */
export interface QuorumSizes {
  readonly memberCount: number;
  readonly writeQuorum: number;
  readonly readQuorum: number;
}

/** Aurora's geometry: 6 segments, 2 per AZ; writes 4/6, reads 3/6 (AZ+1). */
export const AURORA_QUORUM: QuorumSizes = { memberCount: 6, writeQuorum: 4, readQuorum: 3 };

export interface SimpleQuorumSet {
  readonly kind: "simple";
  readonly members: readonly NodeId[];
  readonly writeQuorum: number;
  readonly readQuorum: number;
}

export interface TransitionQuorumSet {
  readonly kind: "transition";
  /** Writes must reach a write quorum of every config; reads a read quorum of any one. At least 2. */
  readonly configs: readonly SimpleQuorumSet[];
  /** Union of the configs' members, in first-seen order. */
  readonly members: readonly NodeId[];
}

export type QuorumSet = SimpleQuorumSet | TransitionQuorumSet;

function invalid(message: string): BorealisError {
  return new BorealisError("INVALID_ARGUMENT", `invalid quorum set: ${message}`);
}

/** A simple set over `members`, validated: exact member count, distinct non-empty ids, overlapping quorums. */
export function simpleQuorumSet(members: readonly NodeId[], sizes: QuorumSizes = AURORA_QUORUM): SimpleQuorumSet {
  const { memberCount: n, writeQuorum: w, readQuorum: r } = sizes;
  if (!isSafeUint(n) || n < 1) throw invalid(`member count ${n} is not a positive integer`);
  if (members.length !== n) throw invalid(`expected ${n} members, got ${members.length} (${members.join(", ")})`);
  const seen = new Set<string>();
  for (const m of members) {
    if (typeof m !== "string" || m.length === 0) throw invalid(`member id ${JSON.stringify(m)} is empty or not a string`);
    if (seen.has(m)) throw invalid(`member ${m} appears twice; the ${n} segments must be on distinct nodes`);
    seen.add(m);
  }
  if (!isSafeUint(w) || w < 1 || w > n) throw invalid(`write quorum ${w} is not in 1..${n}`);
  if (!isSafeUint(r) || r < 1 || r > n) throw invalid(`read quorum ${r} is not in 1..${n}`);
  if (w + r <= n) throw invalid(`write ${w} + read ${r} ≤ ${n} members: a read quorum could miss a durable write`);
  if (2 * w <= n) throw invalid(`two write quorums of ${w} out of ${n} need not overlap`);
  return Object.freeze({ kind: "simple", members: Object.freeze([...members]), writeQuorum: w, readQuorum: r });
}

/** A transition set over ≥ 2 distinct simple configs (a config listed twice is dropped). */
export function transitionQuorumSet(configs: readonly SimpleQuorumSet[]): TransitionQuorumSet {
  const unique: SimpleQuorumSet[] = [];
  const keys = new Set<string>();
  for (const c of configs) {
    if (c.kind !== "simple") throw invalid("a transition set's configs must be simple sets");
    // Re-validate: the config may have been built by hand rather than by simpleQuorumSet.
    simpleQuorumSet(c.members, { memberCount: c.members.length, writeQuorum: c.writeQuorum, readQuorum: c.readQuorum });
    const key = configKey(c);
    if (keys.has(key)) continue;
    keys.add(key);
    unique.push(c);
  }
  if (unique.length < 2) throw invalid(`a transition set needs at least 2 distinct configs, got ${unique.length}`);
  const members: NodeId[] = [];
  const seen = new Set<NodeId>();
  for (const c of unique) for (const m of c.members) if (!seen.has(m)) { seen.add(m); members.push(m); }
  return Object.freeze({ kind: "transition", configs: Object.freeze(unique), members: Object.freeze(members) });
}

function configKey(c: SimpleQuorumSet): string {
  return `${c.writeQuorum}/${c.readQuorum}:${[...c.members].sort().join("\u0000")}`;
}

/** The simple configs a set is made of: itself, or a transition set's configs. */
export function configsOf(set: QuorumSet): readonly SimpleQuorumSet[] {
  return set.kind === "simple" ? [set] : set.configs;
}

/** Every member any config names: the segments a writer sends to and whose acks it counts. */
export function allMembers(set: QuorumSet): readonly NodeId[] {
  return set.members;
}

function fromConfigs(configs: readonly SimpleQuorumSet[]): QuorumSet {
  assert(configs.length >= 1, "a quorum set has at least one config");
  return configs.length === 1 ? configs[0]! : transitionQuorumSet(configs);
}

/**
 * Starts replacing `outgoing` by `incoming` (invariant 11): every config that contains `outgoing`
 * gains a twin with `incoming` in its place. The incoming segment must be new to the set.
 */
export function beginReplacement(set: QuorumSet, outgoing: NodeId, incoming: NodeId): QuorumSet {
  const configs = configsOf(set);
  if (!set.members.includes(outgoing)) throw invalid(`cannot replace ${outgoing}: not a member`);
  if (set.members.includes(incoming)) throw invalid(`cannot add ${incoming}: already a member`);
  const next: SimpleQuorumSet[] = [...configs];
  for (const c of configs) {
    if (!c.members.includes(outgoing)) continue;
    const members = c.members.map((m) => (m === outgoing ? incoming : m));
    next.push(simpleQuorumSet(members, { memberCount: members.length, writeQuorum: c.writeQuorum, readQuorum: c.readQuorum }));
  }
  assert(next.length > configs.length, 11, "a replacement adds a config for each one holding the outgoing member");
  return fromConfigs(next);
}

/**
 * Ends a replacement begun by `beginReplacement`: "commit" keeps the configs without `outgoing`
 * (the new segment has hydrated), "revert" keeps those without `incoming` (the old one came back).
 */
export function finishReplacement(set: QuorumSet, outgoing: NodeId, incoming: NodeId, outcome: "commit" | "revert"): QuorumSet {
  const configs = configsOf(set);
  const hasOut = configs.some((c) => c.members.includes(outgoing));
  const hasIn = configs.some((c) => c.members.includes(incoming));
  if (!hasOut || !hasIn) throw invalid(`no replacement of ${outgoing} by ${incoming} is in progress`);
  const dropped = outcome === "commit" ? outgoing : incoming;
  const kept = configs.filter((c) => !c.members.includes(dropped));
  if (kept.length === 0) throw invalid(`finishing ${outgoing}→${incoming} (${outcome}) would leave no config`);
  const result = fromConfigs(kept);
  assert(!result.members.includes(dropped), 11, `${dropped} left the set after ${outcome}`);
  return result;
}

function toSet(members: Iterable<NodeId>): ReadonlySet<NodeId> {
  return members instanceof Set ? (members as ReadonlySet<NodeId>) : new Set(members);
}

function countIn(config: SimpleQuorumSet, present: ReadonlySet<NodeId>): number {
  let n = 0;
  for (const m of config.members) if (present.has(m)) n++;
  return n;
}

/** True if `ackedMembers` (non-members are ignored) make a write quorum of every config. */
export function isWriteQuorum(set: QuorumSet, ackedMembers: Iterable<NodeId>): boolean {
  const acked = toSet(ackedMembers);
  for (const c of configsOf(set)) if (countIn(c, acked) < c.writeQuorum) return false;
  return true;
}

/** True if `respondedMembers` (non-members are ignored) make a read quorum of at least one config. */
export function isReadQuorum(set: QuorumSet, respondedMembers: Iterable<NodeId>): boolean {
  const responded = toSet(respondedMembers);
  for (const c of configsOf(set)) if (countIn(c, responded) >= c.readQuorum) return true;
  return false;
}

// Scratch space for the k-th highest SCL: committedPoint runs on every ack, so it allocates nothing.
let scratch = new Float64Array(16);

/** The write-quorum-th highest SCL of one simple config; a member with no SCL counts as 0. */
function configCommittedPoint(config: SimpleQuorumSet, sclByMember: ReadonlyMap<NodeId, Lsn>): number {
  const n = config.members.length;
  if (scratch.length < n) scratch = new Float64Array(n * 2);
  // Insertion sort, descending: n is 6 (7–8 in a transition), so this beats any general sort.
  for (let i = 0; i < n; i++) {
    const v = sclByMember.get(config.members[i]!) ?? 0;
    let j = i;
    while (j > 0 && scratch[j - 1]! < v) { scratch[j] = scratch[j - 1]!; j--; }
    scratch[j] = v;
  }
  const point = scratch[config.writeQuorum - 1]!;
  // Positive space: at least w members hold it; negative space: fewer than w hold anything above it.
  assert(config.writeQuorum === n || scratch[config.writeQuorum]! <= point, "committed point: k-th highest is sorted");
  assert(point <= scratch[0]!, "committed point never exceeds the highest SCL");
  return point;
}

/**
 * Highest LSN L such that a write quorum of `set` has SCL ≥ L (PGCL). For a simple 4/6 set this is
 * the 4th highest SCL; for a transition set the minimum over its configs, since a write must meet
 * every one. Members missing from `sclByMember` count as SCL 0 (they hold nothing we know of).
 */
export function committedPoint(set: QuorumSet, sclByMember: ReadonlyMap<NodeId, Lsn>): Lsn {
  if (set.kind === "simple") return Lsn(configCommittedPoint(set, sclByMember));
  let min = Number.POSITIVE_INFINITY;
  for (const c of set.configs) min = Math.min(min, configCommittedPoint(c, sclByMember));
  assert(Number.isFinite(min) && min >= NO_LSN, "a transition set has configs and a finite committed point");
  return Lsn(min);
}
