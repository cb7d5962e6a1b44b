/**
 * The Hrana endpoint's conformance suite (test/endpoint/conformance.ts), run over the real engine:
 * SQLite in worker threads over the Borealis VFS on a MemoryVolume.
 */
import { endpointConformanceSuite } from "../endpoint/conformance.js";
import { startRig } from "./helpers.js";

endpointConformanceSuite(async () => (await startRig({}, { shipPageImages: false })).engine, "the Borealis engine (MemoryVolume)");
