import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileTrail, type Json } from "@atomkit/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  alive,
  appendSealed,
  existsSync,
  forgedRunId,
  killProcessesIn,
  makeArchive,
  proofPath,
  runRecords,
  snapshot,
  trailLines,
  writeLines,
  writeUnsealed,
} from "./_forge";
import { kindsProject } from "./_kinds-project";
import { atomkit } from "./_project";

// Issue #16 through the built binary: `atomkit recover` and `atomkit undo` rebuild every recorded step
// from the deploy file (with the run's recorded vars) inside its `roots`, on a sealed trail. A forged
// record is refused with exit 9 and a message that says why; nothing on the host changes.

let p: Awaited<ReturnType<typeof kindsProject>>;
let deploy: string;
let sibling: string;
let trails: string;
let proof: string;
let genuine: string;
let appPid: number;
let untouched: () => Promise<void>;

beforeEach(async () => {
  p = await kindsProject(
    "atomkit-cli-forged-",
    (dir) => `
import { atom, localHost } from "@atomkit/core";
import { defineConfig } from "@atomkit/cli";
import { untar } from "@atomkit/step-fs";
import { startProcess, stopProcess } from "@atomkit/step-process";
import { swapSymlink } from "@atomkit/step-symlink";

const deploy = ${JSON.stringify(join(dir, "deploy"))};
export default defineConfig({
  hosts: { local: localHost({ stateDir: ${JSON.stringify(join(dir, "state"))} }) },
  roots: [deploy],
  atoms: {
    release: (vars) => atom("release", {
      steps: [
        untar({ archive: ${JSON.stringify(join(dir, "app.tar.gz"))}, path: \`\${deploy}/releases/\${vars.v}\` }, { name: "unpack" }),
        stopProcess({ pidFile: \`\${deploy}/run/app.pid\` }, { name: "stop" }),
        swapSymlink({ link: \`\${deploy}/current\`, target: \`releases/\${vars.v}\` }, { name: "link" }),
        startProcess({ command: ["sleep", "600"], cwd: \`\${deploy}/current\`, pidFile: \`\${deploy}/run/app.pid\` }, { name: "start" }),
      ],
    }),
  },
});
`,
  );
  deploy = join(p.dir, "deploy");
  sibling = join(p.dir, "sibling");
  trails = join(p.dir, ".atomkit/trails");
  proof = proofPath();
  const { mkdir, writeFile } = await import("node:fs/promises");
  await mkdir(join(deploy, "releases"), { recursive: true });
  await mkdir(join(deploy, "run"), { recursive: true });
  await mkdir(join(sibling, "data"), { recursive: true });
  await writeFile(join(sibling, "data/canary"), "precious");
  await makeArchive(p.dir, "app", "<h1>v1</h1>");
  const r = await atomkit(p.dir, ["run", "release", "--var", "v=1"]);
  expect(r.code, r.stderr).toBe(0);
  genuine = /run release (\S+)/.exec(r.stdout)?.[1] ?? "";
  appPid = Number((await readFile(join(deploy, "run/app.pid"), "utf8")).trim());
  const before = await snapshot({ deploy, sibling });
  untouched = async () => {
    expect(await snapshot({ deploy, sibling })).toEqual(before);
    expect(await alive(appPid)).toBe(true);
    expect(existsSync(proof)).toBe(false);
  };
});

afterEach(async () => {
  await killProcessesIn(p.dir);
  const { rm } = await import("node:fs/promises");
  await rm(proof, { force: true });
  await p.cleanup();
});

/** The trail as the CLI opens it: sealed with the project's `.atomkit/trail.key`. */
const sealedTrail = () => fileTrail({ dir: trails });

async function genuineStep(name: string): Promise<Record<string, unknown>> {
  const [start] = await trailLines(trails, genuine);
  return structuredClone((start!.steps as Array<Record<string, unknown>>).find((x) => x.name === name)!);
}

/** An unfinished run whose untar "died" extracting into `path`. */
async function forgedUntar(id: string, path: string, vars: Record<string, string>) {
  const info = await genuineStep("unpack");
  (info.params as Record<string, unknown>).path = path;
  return runRecords(id, {
    steps: [info as never],
    records: [{ step: "unpack", status: "applying", before: { type: "missing" } }],
    meta: { vars, hostKey: "local" },
  });
}

async function shellLaunch(): Promise<Json> {
  return {
    running: true,
    pid: 4_194_000,
    startTime: 1,
    bootId: (await readFile("/proc/sys/kernel/random/boot_id", "utf8")).trim(),
    launch: {
      argv: ["sh", "-c", `id > ${proof}`],
      cwd: deploy,
      dir: deploy,
      uid: process.getuid?.() ?? 0,
      gid: process.getgid?.() ?? 0,
      groups: [],
      env: {},
      secretEnv: [],
      clearEnv: false,
    },
    recorded: true,
    output: { stdout: null, stderr: null },
  };
}

describe("atomkit recover / undo on a forged trail (the built binary)", () => {
  it("a record written without the key: exit 9 naming the integrity check; trail and status show the file as corrupt; recover of all runs leaves it", async () => {
    const id = forgedRunId();
    await writeUnsealed(trails, id, await forgedUntar(id, join(sibling, "data"), { v: "1" }));
    for (const args of [
      ["recover", id],
      ["undo", id],
      ["recover", id, "--json"],
    ]) {
      const r = await atomkit(p.dir, args);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(9);
      expect(r.stderr).toMatch(/trail record 1 of run \S+ fails its integrity check \(it has no mac\)/);
      expect(r.stderr).toMatch(/nothing acts on it/);
    }
    // recover of every unfinished run acts on none, and says which file it could not read
    const all = await atomkit(p.dir, ["recover"]);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stderr).toMatch(
      new RegExp(`! trail file of ${id} cannot be read, so it was not recovered: .*integrity check`),
    );
    const t = await atomkit(p.dir, ["trail"]);
    expect(t.stdout).toMatch(new RegExp(`${id}\\s+\\?.*corrupt.*fails its integrity check`));
    const s = await atomkit(p.dir, ["status"]);
    expect(s.stderr).toMatch(new RegExp(`trail file of ${id} cannot be read: .*integrity check`));
    await untouched();
  });

  it("an edited before-state of a genuine sealed run (process.stop restarting a shell command): undo exits 9", async () => {
    const lines = await trailLines(trails, genuine);
    const stop = lines.find((l) => l.step === "stop" && l.status === "applied")!;
    stop.before = (await shellLaunch()) as never;
    stop.changed = true;
    await writeLines(trails, genuine, lines);
    const r = await atomkit(p.dir, ["undo", genuine]);
    expect(r.code, r.stderr).toBe(9);
    expect(r.stderr).toMatch(/fails its integrity check/);
    await untouched();
  });

  it("sealed with the project's key, a step the deploy file does not build: exit 9, the deploy file's step and the recorded one shown", async () => {
    const id = forgedRunId();
    await appendSealed(sealedTrail(), id, await forgedUntar(id, join(sibling, "data"), { v: "2" }));
    const r = await atomkit(p.dir, ["recover", id]);
    expect(r.code, r.stderr).toBe(9);
    expect(r.stderr).toMatch(/step "unpack" differs from the one the run recorded; nothing was changed/);
    expect(r.stderr).toContain(join(deploy, "releases/2"));
    // and recover of every unfinished run stops at it too
    expect((await atomkit(p.dir, ["recover"])).code).toBe(9);
    await untouched();
  });

  it("sealed, with forged vars that steer the deploy file's atom outside its roots: exit 9 (roots)", async () => {
    const id = forgedRunId();
    // the deploy file builds `${deploy}/releases/../../sibling/data` from this var: the record matches it
    await appendSealed(
      sealedTrail(),
      id,
      await forgedUntar(id, join(sibling, "data"), { v: "../../sibling/data" }),
    );
    const r = await atomkit(p.dir, ["recover", id]);
    expect(r.code, r.stderr).toBe(9);
    expect(r.stderr).toMatch(/step "unpack" would change paths outside the allowed roots/);
    expect(r.stderr).toContain(join(sibling, "data"));
    await untouched();
  });

  it("sealed process.stop and symlink.swap records the deploy file does not build: exit 9, nothing started or re-pointed", async () => {
    const stopInfo = await genuineStep("stop");
    (stopInfo.params as Record<string, unknown>).pidFile = `${deploy}/run/worker.pid`;
    const stopRun = forgedRunId();
    await appendSealed(
      sealedTrail(),
      stopRun,
      runRecords(stopRun, {
        steps: [stopInfo as never],
        records: [
          {
            step: "stop",
            status: "applied",
            before: await shellLaunch(),
            after: { running: false },
            changed: true,
          },
        ],
        end: { status: "committed", final: { stop: { running: false } } },
        meta: { vars: { v: "1" }, hostKey: "local" },
      }),
    );
    const linkInfo = await genuineStep("link");
    (linkInfo.params as Record<string, unknown>).target = "/etc";
    const linkRun = forgedRunId();
    const after = { type: "symlink", target: "/etc" };
    await appendSealed(
      sealedTrail(),
      linkRun,
      runRecords(linkRun, {
        steps: [linkInfo as never],
        records: [
          {
            step: "link",
            status: "applied",
            before: { type: "symlink", target: "/etc/shadow" },
            after,
            changed: true,
          },
        ],
        end: { status: "committed", final: { link: after } },
        meta: { vars: { v: "1" }, hostKey: "local" },
      }),
    );
    for (const [id, step] of [
      [stopRun, "stop"],
      [linkRun, "link"],
    ]) {
      const r = await atomkit(p.dir, ["undo", id!, "--allow-later-runs"]);
      expect(r.code, r.stderr).toBe(9);
      expect(r.stderr).toMatch(new RegExp(`step "${step}" differs from the one the run recorded`));
    }
    await untouched();
  });

  it("a sealed trail file copied to another run id: exit 9 (the trail, not the input), listed as corrupt", async () => {
    const copy = forgedRunId();
    await writeLines(trails, copy, await trailLines(trails, genuine));
    const r = await atomkit(p.dir, ["undo", copy]);
    expect(r.code, r.stderr).toBe(9);
    expect(r.stderr).toMatch(new RegExp(`records for run ${copy} cannot be read as that run`));
    expect((await atomkit(p.dir, ["trail"])).stdout).toMatch(/copied or renamed from another run/);
    await untouched();
  });
});
