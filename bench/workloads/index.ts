/** The workloads by name, in the order the bench runs them. */
import type { Workload, WorkloadName } from "./workload.js";
import { writeWorkload } from "./write.js";
import { readWorkload } from "./read.js";
import { mixWorkload } from "./mix.js";
import { transferWorkload } from "./transfer.js";
import { bulkWorkload } from "./bulk.js";

export const WORKLOADS: Readonly<Record<WorkloadName, Workload>> = {
  write: writeWorkload,
  read: readWorkload,
  mix: mixWorkload,
  transfer: transferWorkload,
  bulk: bulkWorkload,
};
