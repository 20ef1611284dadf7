import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { freePort, PATIENCE_MS, serviceMissing, testbedEnv, waitUntil } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { atomkit, linkedDir } from "./_project";

// `atomkit init` as a new user meets it: an empty directory with the packages installed, then the
// scaffold deploys at once — a real app process, health-checked over HTTP.

let dir: string;
beforeEach(async () => {
  dir = await linkedDir("atomkit-init-", [
    "core",
    "cli",
    "step-fs",
    "step-process",
    "step-symlink",
    "step-ssh",
    "step-docker",
  ]);
});
afterEach(async () => {
  const pid = Number((await readFile(join(dir, "deploy/app.pid"), "utf8").catch(() => "")).trim());
  if (pid > 0)
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  await rm(dir, { recursive: true, force: true, maxRetries: 10 });
});

const page = async (port: number) => {
  try {
    return (await (await fetch(`http://127.0.0.1:${port}/`)).text()).trim();
  } catch {
    return "down";
  }
};

describe("atomkit init --local", () => {
  it("scaffolds a deploy file that plans and deploys at once: v1, v2, rollback to v1", async () => {
    await writeFile(join(dir, ".gitignore"), "node_modules/");
    const init = await atomkit(dir, ["init"]);
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toMatch(/created atomkit\.config\.ts, app\/server\.mjs/);
    expect(await readFile(join(dir, ".gitignore"), "utf8")).toBe(
      "node_modules/\n# atomkit: trails, the trail key, reports\n.atomkit/\n",
    );
    const port = await freePort();
    const plan = await atomkit(dir, ["plan", "release", "--var", "version=1", "--var", `port=${port}`]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/nothing is changed/);

    for (const v of ["1", "2"]) {
      const r = await atomkit(dir, ["run", "release", "--var", `version=${v}`, "--var", `port=${port}`]);
      expect(r.code, r.stderr).toBe(0);
      expect(await page(port)).toBe(`hello from ${v}`);
    }
    const back = await atomkit(dir, ["rollback", "release"]);
    expect(back.code, back.stderr).toBe(0);
    await waitUntil(async () => (await page(port)) === "hello from 1", "v1 serves again", PATIENCE_MS);
  });

  it("never overwrites: a second init is refused (exit 2) and .gitignore gets .atomkit/ once", async () => {
    expect((await atomkit(dir, ["init", "--local"])).code).toBe(0);
    const config = await readFile(join(dir, "atomkit.config.ts"), "utf8");
    await writeFile(join(dir, "app/server.mjs"), "// mine");
    await rm(join(dir, "atomkit.config.ts"));
    const again = await atomkit(dir, ["init"]);
    expect(again.code, again.stderr).toBe(0);
    expect(await readFile(join(dir, "app/server.mjs"), "utf8")).toBe("// mine");
    expect((await readFile(join(dir, ".gitignore"), "utf8")).match(/^\.atomkit\/$/gm)).toHaveLength(1);
    const third = await atomkit(dir, ["init"]);
    expect(third.code).toBe(2);
    expect(third.stderr).toMatch(/atomkit\.config\.ts already exists/);
    expect(await readFile(join(dir, "atomkit.config.ts"), "utf8")).toBe(config);
  });

  it("refuses a malformed --ssh target and two shapes at once, writing nothing", async () => {
    for (const args of [
      ["init", "--ssh", "web1"],
      ["init", "--ssh", "me@host:99999"],
      ["init", "--ssh", "me@host;rm -rf /"],
      ["init", "--local", "--ssh", "me@host"],
      ["init", "--docker", "--local"],
    ]) {
      const r = await atomkit(dir, args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(/--ssh|--local|--docker/);
    }
    await expect(readFile(join(dir, "atomkit.config.ts"))).rejects.toThrow(/ENOENT/);
  });
});

const env = testbedEnv("sshd.env");
const noSshd = serviceMissing(
  "sshd",
  !!env.ATOMKIT_SSH_PORTS && !!env.ATOMKIT_SSH_KEY,
  "run: bash scripts/testbed/sshd.sh start 2222",
);

describe.skipIf(noSshd)("atomkit init --ssh", () => {
  it("scaffolds an SSH deploy file that plans against the real sshd at once", async () => {
    const port = Number(env.ATOMKIT_SSH_PORTS!.split(" ")[0]);
    const init = await atomkit(dir, ["init", "--ssh", `${env.ATOMKIT_SSH_USER ?? "root"}@127.0.0.1:${port}`]);
    expect(init.code, init.stderr).toBe(0);
    expect(await readFile(join(dir, "atomkit.config.ts"), "utf8")).toMatch(
      /host: "127\.0\.0\.1",\s+port: \d+/,
    );
    const plan = await atomkit(
      dir,
      ["plan", "release", "--var", "version=1", "--var", `base=${join(dir, "remote")}`],
      {
        env: { ATOMKIT_SSH_KEY: env.ATOMKIT_SSH_KEY!, ATOMKIT_SSH_KNOWN_HOSTS: env.ATOMKIT_SSH_KNOWN_HOSTS! },
      },
    );
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/web plan of release/);
  });
});

const docker = testbedEnv("dockerd.env");
const noDocker = serviceMissing(
  "dockerd",
  !!docker.ATOMKIT_DOCKER_SOCKET,
  "run: bash scripts/testbed/dockerd.sh start",
);

describe.skipIf(noDocker)("atomkit init --docker", () => {
  it("scaffolds a container deploy file that plans against the real dockerd at once", async () => {
    const init = await atomkit(dir, ["init", "--docker"]);
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).not.toMatch(/app\/server\.mjs/);
    const plan = await atomkit(
      dir,
      ["plan", "release", "--var", "version=1", "--var", "image=atomkit-test/none"],
      {
        env: { DOCKER_HOST: docker.ATOMKIT_DOCKER_HOST ?? "unix:///var/run/docker.sock" },
      },
    );
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/image \[steps\] docker\.image/);
    expect(plan.stdout).toMatch(/swap \[steps\] docker\.swap/);
  });
});
