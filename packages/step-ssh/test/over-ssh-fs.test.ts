// The contract suites of @atomkit/step-fs, run over a real SSH connection (sshHost), with breakApply
// cutting the link for real (the server-side session is killed).
import { execFileSync } from "node:child_process";
import { chmod, mkdir, symlink, writeFile as writeLocal } from "node:fs/promises";
import { join } from "node:path";
import { makeDir, removePath, untar, uploadFile, writeFile } from "@atomkit/step-fs";
import { describeStepContract, HOSTILE_STRINGS, hashTree } from "@atomkit/testkit";
import { afterAll, describe } from "vitest";
import { cutLink, noSshd, tempDir, testHost, withStateDir } from "./_testbed";

const ARTIFACT = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 31) % 251));

describe.skipIf(noSshd)("step-fs over SSH", () => {
  const ssh = testHost();
  afterAll(() => ssh.close());

  /** A sandbox on the host: `app` for the steps, `state` as the host's stateDir (trash, backups). */
  async function sandbox() {
    const t = await tempDir("atomkit-ssh-fs-");
    const app = join(t.dir, "app");
    await mkdir(app);
    return { ...t, app, host: withStateDir(ssh, join(t.dir, "state")) };
  }

  describeStepContract({
    name: "fs.write over SSH: replace a file",
    idempotent: true,
    async setup() {
      const s = await sandbox();
      const path = join(s.app, "shared", "app.env");
      await mkdir(join(s.app, "shared"));
      await writeLocal(path, "old=1\n");
      await chmod(path, 0o640);
      // the atomic write lands, then the link drops (the first writeFile is the backup's)
      const cut = cutLink(s.host, "writeFile", "after", 1);
      return {
        host: cut.host,
        step: () => writeFile({ path, content: "password=very-secret", mode: 0o600 }),
        snapshot: () => hashTree(s.app),
        breakApply: cut.arm,
        cleanup: s.cleanup,
      };
    },
  });

  for (const existing of [true, false]) {
    describeStepContract({
      name: `fs.upload over SSH: ${existing ? "replace a file" : "new file"}`,
      idempotent: true,
      async setup() {
        const s = await sandbox();
        await mkdir(join(s.app, "shared"));
        const source = join(s.dir, "app 1.2.jar");
        await writeLocal(source, ARTIFACT);
        const path = join(s.app, "shared", "app.jar");
        if (existing) await writeLocal(path, "old jar");
        const cut = cutLink(s.host, "rename", "after", existing ? 1 : 0);
        return {
          host: cut.host,
          step: () => uploadFile({ source, path, mode: 0o640 }),
          snapshot: () => hashTree(s.app),
          breakApply: cut.arm,
          cleanup: s.cleanup,
        };
      },
    });
  }

  describeStepContract({
    name: "fs.untar over SSH: upload + tar on the host",
    idempotent: true,
    breakApplyLeaves: "unchanged",
    async setup() {
      const s = await sandbox();
      await mkdir(join(s.app, "releases", "1"), { recursive: true });
      const src = join(s.dir, "src");
      await mkdir(join(src, "bin"), { recursive: true });
      await writeLocal(join(src, "bin", "start"), "#!/bin/sh\necho start\n", { mode: 0o755 });
      await writeLocal(join(src, "VERSION"), "2\n");
      await symlink("bin/start", join(src, "start"));
      const archive = join(s.dir, "release 2.tar.gz");
      execFileSync("tar", ["-czf", archive, "-C", src, "."]);
      // the final rename is never sent: the link drops first
      const cut = cutLink(s.host, "rename", "before");
      return {
        host: cut.host,
        step: () => untar({ archive, path: join(s.app, "releases", "2") }),
        snapshot: () => hashTree(s.app),
        breakApply: cut.arm,
        cleanup: s.cleanup,
      };
    },
  });

  describeStepContract({
    name: "fs.mkdir over SSH: recursive, hostile names",
    idempotent: true,
    async setup() {
      const s = await sandbox();
      // the second of three mkdirs lands, then the link drops
      const cut = cutLink(s.host, "mkdir", "after", 1);
      return {
        host: cut.host,
        step: () => makeDir({ path: join(s.app, "a b", "it's", "c $(x)"), mode: 0o750 }),
        snapshot: () => hashTree(s.app),
        breakApply: cut.arm,
        cleanup: s.cleanup,
      };
    },
  });

  describeStepContract({
    name: "fs.remove over SSH: a directory of hostile names",
    idempotent: true,
    async setup() {
      const s = await sandbox();
      const dir = join(s.app, "old stuff $(x)");
      await mkdir(dir);
      for (const name of HOSTILE_STRINGS.filter((n) => n && n !== "." && n !== ".." && !n.includes("/"))) {
        await writeLocal(join(dir, name), name);
      }
      await symlink("old stuff $(x)", join(s.app, "link"));
      const cut = cutLink(s.host, "rename", "after");
      return {
        host: cut.host,
        step: () => removePath({ path: dir }),
        snapshot: () => hashTree(s.app),
        breakApply: cut.arm,
        cleanup: s.cleanup,
      };
    },
  });
});
