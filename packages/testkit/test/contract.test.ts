import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { localHost } from "@atomkit/core";
import {
  describeApplyUndoContract,
  describeHostContract,
  describeObserveContract,
  describeParamsContract,
  describeRollbackContract,
  describeStepContract,
  type StepContractOptions,
  snapshotTree,
} from "../src/index";
import { memory, setKey, writeText } from "./fixtures/kinds.mjs";

// The parts of the contract one by one: this kind's state is the test process's memory, which no new
// process can undo, so the recover part (undo in a new process) is left out on purpose.
const inMemory: StepContractOptions = {
  name: "memory.set (in-memory kind)",
  idempotent: true,
  async setup() {
    memory.clear();
    memory.set("k", "old");
    return { host: localHost({ stateDir: tmpdir() }), step: () => setKey({ key: "k", value: "new" }) };
  },
};
describeObserveContract(inMemory);
describeParamsContract(inMemory);
describeApplyUndoContract(inMemory);
describeRollbackContract(inMemory);

describeStepContract({
  name: "example.write (real files)",
  idempotent: true,
  kindModule: new URL("./fixtures/kinds.mjs", import.meta.url),
  async setup() {
    const dir = await mkdtemp(join(tmpdir(), "atomkit-testkit-"));
    await writeFile(join(dir, "config"), "old content");
    const path = join(dir, "config");
    let broken = false;
    const host = localHost({ stateDir: join(dir, ".state") });
    // breakApply: the next write lands, then the host connection "drops" (apply fails after changing)
    const flaky = {
      ...host,
      writeFile: async (...args: Parameters<typeof host.writeFile>) => {
        await host.writeFile(...args);
        if (broken) {
          broken = false;
          throw new Error("link dropped after the write");
        }
      },
    };
    return {
      host: flaky,
      step: () => writeText({ path, content: "new content" }),
      snapshot: () => snapshotTree(dir, { ignore: (p) => p.startsWith(".state") }),
      breakApply: () => {
        broken = true;
      },
      cleanup: () => rm(dir, { recursive: true, force: true, maxRetries: 10 }),
    };
  },
});

describeHostContract({
  name: "localHost",
  async setup() {
    const dir = await mkdtemp(join(tmpdir(), "atomkit-host-"));
    await mkdir(join(dir, "work"));
    return {
      host: localHost({ stateDir: join(dir, ".state") }),
      dir: join(dir, "work"),
      cleanup: () => rm(dir, { recursive: true, force: true, maxRetries: 10 }),
    };
  },
});
