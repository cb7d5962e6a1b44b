/** Every `borealis` subcommand, in the order `borealis --help` lists them. */
import type { Command } from "../command.js";
import { controlPlaneCommand } from "./control-plane.js";
import { sqlCommand } from "./sql.js";
import { statusCommand } from "./status.js";
import { storageNodeCommand } from "./storage-node.js";
import { upCommand } from "./up.js";
import { writerCommand } from "./writer.js";

export const COMMANDS: readonly Command[] = [upCommand, sqlCommand, statusCommand, writerCommand, controlPlaneCommand, storageNodeCommand];
