/**
 * The systems by name. Loaded lazily: a load generator driving PostgreSQL does not load better-sqlite3
 * or the libSQL client, so its memory and start-up are its own system's. Adding a system is one module
 * and one line here.
 */
import type { BenchSystem, SystemName } from "./system.js";

const LOADERS: Readonly<Record<SystemName, () => Promise<BenchSystem>>> = {
  borealis: async () => (await import("./borealis.js")).borealisSystem,
  "borealis-hrana": async () => (await import("./borealis-hrana.js")).borealisHranaSystem,
  postgres: async () => (await import("./postgres.js")).postgresSystem,
  sqlite: async () => (await import("./sqlite.js")).sqliteSystem,
};

export function loadSystem(name: SystemName): Promise<BenchSystem> {
  return LOADERS[name]();
}
