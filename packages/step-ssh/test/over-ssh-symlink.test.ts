// The contract suite of @atomkit/step-symlink over a real SSH connection; breakApply cuts the link.
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { swapSymlink } from "@atomkit/step-symlink";
import { describeStepContract, hashTree } from "@atomkit/testkit";
import { afterAll, describe } from "vitest";
import { cutLink, noSshd, tempDir, testHost, withStateDir } from "./_testbed";

describe.skipIf(noSshd)("step-symlink over SSH", () => {
  const ssh = testHost();
  afterAll(() => ssh.close());

  for (const current of ["releases/1", null] as const) {
    describeStepContract({
      name: `symlink.swap over SSH: ${current ? "existing link → new release" : "no link yet"}`,
      idempotent: true,
      async setup() {
        const t = await tempDir("atomkit-ssh-symlink-");
        const app = join(t.dir, "app $(x) it's");
        for (const v of ["1", "2"]) {
          await mkdir(join(app, "releases", v), { recursive: true });
          await writeFile(join(app, "releases", v, "VERSION"), v);
        }
        if (current) await symlink(current, join(app, "current"));
        // the rename of the temporary link over `current` lands, then the link drops
        const cut = cutLink(withStateDir(ssh, join(t.dir, "state")), "rename", "after");
        return {
          host: cut.host,
          step: () => swapSymlink({ link: join(app, "current"), target: "releases/2" }),
          snapshot: () => hashTree(app),
          breakApply: cut.arm,
          cleanup: t.cleanup,
        };
      },
    });
  }
});
