/**
 * The SQL engine's public face: `Engine` (implements `SqlEngine`, sql-engine.ts) and its options.
 * The volume side is `VolumeIO` (../volume-io.ts); `MemoryVolume` (../memory-volume.ts) is the
 * in-memory one for tests and benchmarks. How the engine works: README.md in this folder.
 */
export { Engine, type EngineOptions, type EngineStats } from "./engine.js";
