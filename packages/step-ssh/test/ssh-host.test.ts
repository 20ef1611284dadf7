import { mkdtempSync, rmSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeHostContract } from "@atomkit/testkit";
import { afterAll, describe } from "vitest";
import { noSshd, tempDir, testHost } from "./_testbed";

describe.skipIf(noSshd)("sshHost against a real sshd", () => {
  // one host, one connection for the whole suite; its leases go to a throwaway state dir
  const stateDir = mkdtempSync(join(tmpdir(), "atomkit-ssh-state-"));
  const host = testHost({ stateDir });
  afterAll(async () => {
    await host.close();
    rmSync(stateDir, { recursive: true, force: true, maxRetries: 10 });
  });

  describeHostContract({
    name: "sshHost",
    async setup() {
      const { dir, cleanup } = await tempDir();
      await mkdir(`${dir}/work`);
      return { host, dir: `${dir}/work`, cleanup };
    },
  });
});
