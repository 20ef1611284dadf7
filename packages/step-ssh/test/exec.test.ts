import { readdirSync, readFileSync, statSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import {
  atom,
  fileTrail,
  type Host,
  localHost,
  ParamsError,
  run,
  undoRun,
  validateParams,
} from "@atomkit/core";
import { describeStepContract, HOSTILE_STRINGS, hashTree } from "@atomkit/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { execCommand } from "../src/index";
import { noSshd, tempDir, testHost } from "./_testbed";

/** The same host (and connection) with its state in a throwaway directory. */
function withStateDir(host: Host, stateDir: string): Host {
  return Object.create(host, { stateDir: { value: stateDir } }) as Host;
}

/** The files under `dir` whose bytes contain `text`. */
function filesHolding(dir: string, text: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = `${d}/${name}`;
      if (statSync(path).isDirectory()) walk(path);
      else if (readFileSync(path).includes(text) || name.includes(text)) out.push(path);
    }
  };
  walk(dir);
  return out;
}

/** A work dir whose name a shell would mangle, holding `config` = "old". */
async function workDir() {
  const t = await tempDir();
  const dir = `${t.dir}/it's a "dir" $(x)`;
  await mkdir(dir);
  await writeFile(`${dir}/config`, "old");
  return { ...t, dir, state: `${t.dir}/.state` };
}

const write = (text: string, file: string, flag?: string) => [
  "sh",
  "-c",
  'printf %s "$1" > "$2"; if [ -n "$3" ] && [ -e "$3" ]; then exit 7; fi',
  "sh",
  text,
  file,
  flag ?? "",
];

describe.skipIf(noSshd)("ssh.exec over SSH", () => {
  const ssh = testHost();
  afterAll(() => ssh.close());

  describeStepContract({
    name: "ssh.exec with check (sshHost)",
    idempotent: true,
    async setup() {
      const w = await workDir();
      const file = `${w.dir}/config`;
      const flag = `${w.dir}/../break-apply`;
      return {
        host: ssh,
        step: () =>
          execCommand({ command: write("new", file, flag), undo: write("old", file), check: ["cat", file] }),
        snapshot: () => hashTree(w.dir),
        // the command writes, then fails: a partial change that check must see
        breakApply: () => writeFile(flag, ""),
        cleanup: w.cleanup,
      };
    },
  });

  describeStepContract({
    name: "ssh.exec without check (sshHost, marker state)",
    async setup() {
      const w = await workDir();
      const file = `${w.dir}/config`;
      const host = withStateDir(ssh, w.state);
      return {
        host,
        step: () => execCommand({ command: write("new", file), undo: write("old", file) }),
        snapshot: () => hashTree(w.dir),
        cleanup: w.cleanup,
      };
    },
  });

  it("passes hostile argv words, cwd and env literally", async () => {
    const w = await workDir();
    try {
      const out = `${w.dir}/out`;
      const step = execCommand({
        command: ["sh", "-c", 'printf "%s\\0" "$@" > out; printf %s "$V" > env', "sh", ...HOSTILE_STRINGS],
        undo: ["rm", "-f", "out", "env"],
        check: ["cat", "out"],
        cwd: w.dir,
        env: { V: HOSTILE_STRINGS.join("|") },
      });
      const r = await run(atom("hostile", { steps: [step] }), { host: ssh, lock: false });
      expect(r.status, r.error?.message).toBe("committed");
      expect((await readFile(out, "utf8")).split("\0").slice(0, -1)).toEqual(HOSTILE_STRINGS);
      expect(await readFile(`${w.dir}/env`, "utf8")).toBe(HOSTILE_STRINGS.join("|"));
    } finally {
      await w.cleanup();
    }
  });

  it("undo <runId> from the trail, in a new engine run, restores; drift is refused", async () => {
    const w = await workDir();
    try {
      const file = `${w.dir}/config`;
      const trail = fileTrail({ dir: `${w.dir}/../trails` });
      const host = withStateDir(ssh, w.state);
      const withCheck = execCommand(
        { command: write("new", file), undo: write("old", file), check: ["cat", file] },
        { name: "checked" },
      );
      const marker = execCommand(
        { command: ["touch", `${w.dir}/m`], undo: ["rm", `${w.dir}/m`] },
        { name: "marked" },
      );
      const done = await run(atom("release", { steps: [withCheck, marker] }), { host, trail, lock: false });
      expect(done.status).toBe("committed");
      const undone = await undoRun(trail, done.runId, { host, steps: [execCommand], lock: false });
      expect(undone.status, undone.error?.message).toBe("rolled-back");
      expect(undone.steps.every((s) => s.verified)).toBe(true);
      expect(await readFile(file, "utf8")).toBe("old");

      const again = await run(atom("release", { steps: [withCheck] }), { host, trail, lock: false });
      await writeFile(file, "changed by someone else");
      await expect(
        undoRun(trail, again.runId, { host, steps: [execCommand], lock: false }),
      ).rejects.toMatchObject({
        code: "ATOM_DRIFT",
      });
    } finally {
      await w.cleanup();
    }
  });

  it("a secret in the command never reaches a file under the host's state dir (marker, lease)", async () => {
    const w = await workDir();
    try {
      const secret = "s3cr3t-T0KEN-4f9a";
      const host = withStateDir(ssh, w.state);
      const leaks: string[] = [];
      const seen: string[] = [];
      const scan = () => {
        seen.push(...filesHolding(w.state, ""));
        leaks.push(...filesHolding(w.state, secret));
      };
      const steps = [
        execCommand(
          { command: ["sh", "-c", 'printf %s "$1" > "$2"', "sh", secret, `${w.dir}/token`], undo: ["true"] },
          { name: "with a secret", secret: ["command.3"] },
        ),
        execCommand({ command: ["false"], undo: ["true"] }, { name: "fails" }),
      ];
      const r = await run(atom("secret", { steps }), {
        host,
        onEvent: (e) => {
          if (e.type === "step:applied") scan(); // the marker and the lease are there now
        },
      });
      expect(r.status, r.error?.message).toBe("rolled-back");
      expect(await readFile(`${w.dir}/token`, "utf8")).toBe(secret); // it did run (and its undo is `true`)
      expect(seen.filter((f) => f.includes("/ssh-exec/"))).not.toHaveLength(0); // it saw the marker
      scan();
      expect(leaks).toEqual([]);
    } finally {
      await w.cleanup();
    }
  });

  it("a failing command without check is recorded as unchanged (its documented limit)", async () => {
    const w = await workDir();
    try {
      const host = withStateDir(ssh, w.state);
      const r = await run(
        atom("fails", { steps: [execCommand({ command: ["sh", "-c", "exit 3"], undo: ["true"] })] }),
        { host, lock: false },
      );
      expect(r.status).toBe("rolled-back");
      expect(r.steps[0]?.status).toBe("failed-unchanged");
      expect(String(r.reason?.message)).toMatch(/exited with code 3/);
    } finally {
      await w.cleanup();
    }
  });
});

describeStepContract({
  name: "ssh.exec with check (localHost: the kind acts only through ctx.host)",
  idempotent: true,
  async setup() {
    const w = await workDir();
    const file = `${w.dir}/config`;
    const flag = `${w.dir}/../break-apply`;
    return {
      host: localHost({ stateDir: w.state }),
      step: () =>
        execCommand({ command: write("new", file, flag), undo: write("old", file), check: ["cat", file] }),
      snapshot: () => hashTree(w.dir),
      breakApply: () => writeFile(flag, ""),
      cleanup: w.cleanup,
    };
  },
});

describe("ssh.exec params", () => {
  it("reports every invalid field at once, a mistyped key with the key meant", async () => {
    const v = await validateParams(
      execCommand({
        command: "systemctl reload nginx",
        undo: [""],
        env: { TOKEN: 42 },
        chek: ["true"],
      } as never),
    );
    expect(v.issues?.map((i) => [i.path, i.message])).toEqual([
      [
        "command",
        'expected a non-empty argv array, e.g. ["systemctl", "reload", "nginx"] (not a shell string), found "systemctl reload nginx"',
      ],
      ["undo.0", 'expected a program name, found ""'],
      ["env.TOKEN", "expected a string, found a number"],
      ["chek", 'unknown param "chek"; did you mean "check"? (known: command, undo, check, cwd, env)'],
    ]);
  });

  it.each([
    [{ command: "rm -rf /", undo: ["true"] }, "command"],
    [{ command: [], undo: ["true"] }, "command"],
    [{ command: ["true"] }, "undo"],
    [{ command: ["true"], undo: [""] }, "undo.0"],
    [{ command: ["true"], undo: ["true"], check: [1] }, "check.0"],
    [{ command: ["true"], undo: ["true"], env: { "A B": "x" } }, "env.A B"],
    [{ command: ["true"], undo: ["true"], cwd: "" }, "cwd"],
    [{ command: ["true"], undo: ["true"], chek: ["true"] }, "chek"],
    ["true", ""],
  ])("refuses %j before anything runs (field %s)", async (params, field) => {
    const w = await workDir();
    try {
      const ran = `${w.dir}/ran`;
      const err = await run(
        atom("bad", {
          steps: [
            execCommand({ command: ["touch", ran], undo: ["rm", ran] }, { name: "first" }),
            execCommand(params as never, { name: "bad" }),
          ],
        }),
        { host: localHost({ stateDir: w.state }), lock: false },
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ParamsError);
      expect((err as ParamsError).issues[0]).toMatchObject({ step: "bad", path: field });
      expect(await hashTree(ran)).toBe(await hashTree(`${w.dir}/nothing`));
    } finally {
      await w.cleanup();
    }
  });
});
