/**
 * Runs the endpoint conformance suite over the test-only better-sqlite3 engine. When the real engine
 * lands, a second file calls `endpointConformanceSuite` with its factory.
 */
import { betterSqliteEngine } from "./better-sqlite3-engine.js";
import { endpointConformanceSuite } from "./conformance.js";

endpointConformanceSuite(() => betterSqliteEngine(), "better-sqlite3 (test engine)");
