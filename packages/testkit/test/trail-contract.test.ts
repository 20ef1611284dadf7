import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileTrail, memoryTrail, type TrailStore } from "@atomkit/core";
import { describeTrailStoreContract } from "../src/trail-contract";

// core's two trails pass the contract every store passes (store-postgres runs it against PostgreSQL)

describeTrailStoreContract({
  name: "memoryTrail",
  async setup() {
    // one backing shared by every handle: the map is the "disk"
    const store = memoryTrail();
    const handle: TrailStore = { ...store, close: undefined } as TrailStore;
    return { open: () => handle };
  },
});

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
