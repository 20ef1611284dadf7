import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileTrail, memoryTrail, type TrailStore } from "@atomkit/core";
import {
  describeTrailEngineContract,
  describeTrailListContract,
  describeTrailLocksContract,
  describeTrailRecordsContract,
  describeTrailRemoveContract,
  describeTrailStoreContract,
  type TrailStoreContractOptions,
} from "../src/trail-contract";

// core's two trails pass the contract every store passes (store-postgres runs it against PostgreSQL);
// memoryTrail through the parts one by one, as a store that cannot keep one part would run the rest

const inMemory: TrailStoreContractOptions = {
  name: "memoryTrail",
  async setup() {
    // one backing shared by every handle: the map is the "disk"
    const store = memoryTrail();
    const handle: TrailStore = { ...store, close: undefined } as TrailStore;
    return { open: () => handle };
  },
};
describeTrailRecordsContract(inMemory);
describeTrailListContract(inMemory);
describeTrailRemoveContract(inMemory);
describeTrailEngineContract(inMemory);
describeTrailLocksContract(inMemory);

describeTrailStoreContract({
  name: "fileTrail (sealed)",
  async setup() {
    const dir = await mkdtemp(join(tmpdir(), "atomkit-file-contract-"));
    return {
      open: () => fileTrail({ dir: join(dir, "trails") }),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
});

describeTrailStoreContract({
  name: "fileTrail (unsealed)",
  async setup() {
    const dir = await mkdtemp(join(tmpdir(), "atomkit-file-contract-"));
    return {
      open: () => fileTrail({ dir: join(dir, "trails"), key: false }),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
});
