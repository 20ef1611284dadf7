import { rename } from "node:fs/promises";
import { join } from "node:path";
import { serviceMissing, testbedEnv } from "@atomkit/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeCliProject, type Project, type SshTarget } from "./_cli-project";

// Deploys across runs, as users run them: through the built CLI, on the local host and over four real
// sshd hosts. v1 → v2 → failing v3 (rolled back) → rollback (v1 serves, verified) → rollback again
// (refused: nothing earlier) → run v2 → undo; the app's environment (a secret too) kept through every
// rollback; a rollback-failed undo finished by recover once its blocker is gone.

const env = testbedEnv("sshd.env");
const ports = (env.ATOMKIT_SSH_PORTS ?? "").split(" ").filter(Boolean).map(Number);
const skipSsh = serviceMissing(
  "sshd (4 ports)",
  ports.length >= 4 && !!env.ATOMKIT_SSH_KEY,
  "run: bash scripts/testbed/sshd.sh start 2222 2223 2224 2225",
);
const ssh: SshTarget[] = ports.slice(0, 4).map((port) => ({
  port,
  host: env.ATOMKIT_SSH_HOST ?? "127.0.0.1",
  user: env.ATOMKIT_SSH_USER ?? "root",
  key: env.ATOMKIT_SSH_KEY ?? "",
  knownHosts: env.ATOMKIT_SSH_KNOWN_HOSTS ?? "",
}));

const TOKEN = "app-token-across-runs-0123456789";
/** Each step of a test is a CLI process of its own over real hosts: bound by those, not by 30 s. */
const LONG = 10 * 60_000;

for (const mode of ["local", "ssh"] as const) {
  describe.skipIf(mode === "ssh" && skipSsh)(
    `across runs through the CLI (${mode === "local" ? "local host" : "4 sshd hosts"})`,
    () => {
      let p: Project;
      const withToken = { APP_TOKEN: TOKEN };
      const served = async () =>
        Promise.all(p.hosts.map(async (_, i) => `${(await p.get(i))?.trim()} ${await p.get(i, "/env")}`));
      const expectServing = async (version: string) =>
        expect(await served()).toEqual(
          p.hosts.map(
            () =>
              `hello from ${version} (hi from ${version}) {"greeting":"hi from ${version}","token":"set"}`,
          ),
        );
      const idOf = (stderr: string, stdout: string) =>
        /fleet (\S+) /.exec(stderr)?.[1] ?? /run release (\S+)/.exec(stdout)?.[1] ?? "";

      beforeAll(async () => {
        p = await makeCliProject({ count: mode === "local" ? 1 : 4, ...(mode === "ssh" ? { ssh } : {}) });
        const setup = await p.atomkit(["run", "setup"]);
        expect(setup.code, setup.stderr).toBe(0);
      });
      afterAll(() => p?.cleanup());

      it(
        "v1 → v2 → failing v3 → rollback → v1 serves, verified; nothing earlier is refused; run v2 → undo",
        async () => {
          const v1 = await p.atomkit(["run", "release", "--var", "version=v1"], withToken);
          expect(v1.code, v1.stderr).toBe(0);
          await expectServing("v1");
          const v2 = await p.atomkit(["run", "release", "--var", "version=v2"], withToken);
          expect(v2.code, v2.stderr).toBe(0);
          await expectServing("v2");
          const v3 = await p.atomkit(["run", "release", "--var", "version=v3"], withToken);
          expect(v3.code, v3.stderr).toBe(3);
          await expectServing("v2");

          const status = await p.atomkit(["status"]);
          expect(status.code, status.stderr).toBe(0);
          expect(status.stdout).toMatch(/release\s+version=v2 .*token=\*\*\*/);
          expect(status.stdout).toContain("as deployed");
          expect(status.stdout).not.toContain(TOKEN);

          // the rolled-back v3 restarted v2 under a new pid: the same launch, no drift, no --force
          const back = await p.atomkit(["rollback", "release"], withToken);
          expect(back.code, back.stderr).toBe(0);
          expect(back.stderr).toMatch(/rollback \S+ rolled-back \(0 failed\)/);
          expect(back.stdout.match(/↺ stop undone, verified/g)?.length).toBe(p.hosts.length);
          await expectServing("v1");

          const again = await p.atomkit(["rollback", "release"], withToken);
          expect(again.code).toBe(2);
          expect(again.stderr).toContain("nothing earlier to go back to");
          await expectServing("v1");

          const forward = await p.atomkit(["run", "release", "--var", "version=v2"], withToken);
          expect(forward.code, forward.stderr).toBe(0);
          await expectServing("v2");
          // the token is a secret var: never in the trail, so undo asks for it instead of restarting without
          const refused = await p.atomkit(["undo", idOf(forward.stderr, forward.stdout)]);
          expect(refused.code).toBe(2);
          expect(refused.stderr).toMatch(/secret var\(s\) token, which the trail never holds/);
          await expectServing("v2");
          const undo = await p.atomkit(["undo", idOf(forward.stderr, forward.stdout)], withToken);
          expect(undo.code, undo.stderr).toBe(0);
          await expectServing("v1");

          const trail = await p.atomkit(["trail"]);
          expect(trail.stdout).toMatch(/release\s+\S+\s+run\s+rolled-back\s+\S+\s+version=v3/);
          expect(trail.stdout).not.toContain(TOKEN);
        },
        LONG,
      );

      it(
        "an atom without a stop step never commits while the old release serves",
        async () => {
          const r = await p.atomkit(["run", "nostop", "--var", "version=v2"]);
          expect(r.code).toBe(3);
          expect(r.stderr).toMatch(/another launch/);
          await expectServing("v1");
        },
        LONG,
      );

      it(
        "a rollback that fails half-way is finished by recover once the blocker is gone",
        async () => {
          const v2 = await p.atomkit(["run", "release", "--var", "version=v2"], withToken);
          expect(v2.code, v2.stderr).toBe(0);
          // the blocker: release v1's directory is gone (moved away) on the first host, so v1 cannot restart
          const v1dir = join(p.hosts[0]!.base, "releases", "v1");
          await rename(v1dir, `${v1dir}.away`);
          const undo = await p.atomkit(["undo", idOf(v2.stderr, v2.stdout)], withToken);
          expect(undo.code, undo.stderr).toBe(4);
          expect(undo.stderr).toMatch(/atomkit recover (\S+)/);
          const recoverId = /atomkit recover (\S+)/.exec(undo.stderr)![1]!;
          await rename(`${v1dir}.away`, v1dir);
          const done = await p.atomkit(["recover", recoverId], withToken);
          expect(done.code, `${done.stdout}\n${done.stderr}`).toBe(0);
          await expectServing("v1");
        },
        LONG,
      );

      it(
        "vars are declared: a missing or unknown one is invalid input, and list shows them",
        async () => {
          const missing = await p.atomkit(["run", "release"], withToken);
          expect(missing.code).toBe(2);
          expect(missing.stderr).toContain('var "version" is required');
          const typo = await p.atomkit(
            ["run", "release", "--var", "version=v2", "--var", "vesion=v2"],
            withToken,
          );
          expect(typo.code).toBe(2);
          expect(typo.stderr).toContain('unknown var "vesion"');
          const bad = await p.atomkit(["run", "release", "--var", "version=v9"], withToken);
          expect(bad.code).toBe(2);
          expect(bad.stderr).toContain("must be one of v1, v2, v3");
          const list = await p.atomkit(["list"]);
          expect(list.stdout).toMatch(/release .*\n\s+vars: version \(v1\|v2\|v3, required\)/);
          await expectServing("v1");
        },
        LONG,
      );
    },
  );
}
