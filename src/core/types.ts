/**
 * The volume's vocabulary as types (DESIGN.md, "Vocabulary").
 *
 * Numbers that mean different things get different brands so that the compiler refuses an LSN where a
 * page number belongs. All of them are plain JavaScript numbers at run time: LSNs, page numbers and
 * epochs stay below 2^53, which `assertSafeUint` checks wherever one enters the process from outside.
 */

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/** Log sequence number: allocated only by the writer of the current volume epoch (invariant 1). */
export type Lsn = Brand<number, "Lsn">;
/** Page number within a volume, from 1 (SQLite's numbering). */
export type PageNo = Brand<number, "PageNo">;
/** Protection group number within a volume, from 0. */
export type PgId = Brand<number, "PgId">;
/** Volume epoch (bumped by each recovery) or membership epoch (bumped by each quorum-set change). */
export type Epoch = Brand<number, "Epoch">;
/** A storage node's identity, chosen by the operator (`--id`). */
export type NodeId = Brand<string, "NodeId">;
/** A volume's identity, chosen when it is created. */
export type VolumeId = Brand<string, "VolumeId">;
/** Availability zone label (`--az`). */
export type Az = Brand<string, "Az">;

export const Lsn = (n: number): Lsn => n as Lsn;
export const PageNo = (n: number): PageNo => n as PageNo;
export const PgId = (n: number): PgId => n as PgId;
export const Epoch = (n: number): Epoch => n as Epoch;
export const NodeId = (s: string): NodeId => s as NodeId;
export const VolumeId = (s: string): VolumeId => s as VolumeId;
export const Az = (s: string): Az => s as Az;

/** No record: the segment backlink of a PG's first record, and the SCL of an empty segment. */
export const NO_LSN = Lsn(0);

/** The epochs every storage request carries (invariant 8, invariant 11). */
export interface Epochs {
  readonly volumeEpoch: Epoch;
  readonly membershipEpoch: Epoch;
}

/** A segment is named by its volume and protection group; a node hosts at most one segment of each. */
export interface SegmentKey {
  readonly volumeId: VolumeId;
  readonly pgId: PgId;
}

export function segmentKeyString(key: SegmentKey): string {
  return `${key.volumeId}/${key.pgId}`;
}

/** "host:port" split and checked; used by every flag that takes an address. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export function parseHostPort(text: string): HostPort {
  const at = text.lastIndexOf(":");
  if (at <= 0) throw new TypeError(`expected HOST:PORT, got "${text}"`);
  const host = text.slice(0, at).replace(/^\[(.*)\]$/, "$1");
  const port = Number(text.slice(at + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TypeError(`expected a port number 0..65535 in "${text}"`);
  }
  return { host, port };
}

export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(":") ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}
