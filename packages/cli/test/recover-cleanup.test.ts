import { execFileSync } from "node:child_process";
import { mkdir, readdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { hashTree } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { atomkit, makeProject } from "./_project";

// Issue #16: a deploy killed (SIGKILL) in the middle of a symlink swap or an untar leaves temporary
// names beside the target (`.current.atomkit-*`, `.2.atomkit-*`). `atomkit recover` settles the run
// and then lets each kind clean up (its `cleanup`): the tree ends byte for byte as before the run.
// The deploy file's host kills its own process at a chosen Host call, so the kill lands exactly there.

let p: Awaited<ReturnType<typeof makeProject>>;
let srv: string;
beforeEach(async () => {
  p = await makeProject("", ["step-fs", "step-symlink"]);
  srv = join(p.dir, "srv");
  await mkdir(join(srv, "releases/1"), { recursive: true });
  await writeFile(join(srv, "releases/1/index.html"), "release 1");
  await symlink("releases/1", join(srv, "current"));
  await mkdir(join(p.dir, "src"));
  await writeFile(join(p.dir, "src/index.html"), "release 2");
  execFileSync("tar", ["-czf", join(p.dir, "app.tar.gz"), "-C", join(p.dir, "src"), "index.html"]);
  await writeFile(join(p.dir, "atomkit.config.ts"), config(p.dir));
});
afterEach(() => p.cleanup());

const cases: Array<{ name: string; kill: string; fail: boolean; leftover: [string, RegExp] }> = [
  {
    name: "untar, before its temp directory is renamed into place",
    kill: "rename:.2.atomkit-:1",
    fail: false,
    leftover: ["releases", /^\.2\.atomkit-[0-9a-f]+$/],
  },
  {
    name: "a symlink swap, before its temp link is renamed over the link",
    kill: "rename:.current.atomkit-:1",
    fail: false,
    leftover: [".", /^\.current\.atomkit-[0-9a-f]+$/],
  },
  {
    name: "the swap's undo, in a rollback",
    kill: "rename:.current.atomkit-:2",
    fail: true,
    leftover: [".", /^\.current\.atomkit-[0-9a-f]+$/],
  },
  {
    name: "untar's undo, after the release was moved aside, before it was deleted",
    kill: "rm:.2.atomkit-:1",
    fail: true,
    leftover: ["releases", /^\.2\.atomkit-[0-9a-f]+$/],
  },
];

describe("recover removes what a killed swap or untar left beside its target", () => {
  for (const c of cases) {
    it(`killed in ${c.name}`, async () => {
      const before = await hashTree(srv);
      const r = await atomkit(p.dir, ["run", "release", ...(c.fail ? ["--var", "fail=1"] : [])], {
        env: { ATOMKIT_TEST_KILL: c.kill },
      });
      expect(r.signal, `${r.stdout}\n${r.stderr}`).toBe("SIGKILL");
      const [where, name] = c.leftover;
      expect((await readdir(join(srv, where))).filter((n) => name.test(n))).toHaveLength(1);

      const rec = await atomkit(p.dir, ["recover"]);
      expect(rec.code, rec.stderr).toBe(0);
      expect(rec.stderr).toMatch(/→ rolled-back/);
      expect(await hashTree(srv)).toBe(before);
    });
  }
});

function config(dir: string): string {
  return `
import { atom, defineStep, type Host, localHost } from "@atomkit/core";
import { defineConfig } from "@atomkit/cli";
import { untar } from "@atomkit/step-fs";
import { swapSymlink } from "@atomkit/step-symlink";
const root = ${JSON.stringify(dir)};

// ATOMKIT_TEST_KILL="op:prefix:n": SIGKILL this process at the n-th \`op\` on a path whose name starts
// with prefix, before the call: the kill lands inside a step, as a crash would
function killing(host: Host): Host {
  const [op, prefix, nth] = (process.env.ATOMKIT_TEST_KILL ?? "::").split(":");
  let seen = 0;
  const wrap = (name: "rename" | "rm") => {
    const real = host[name] as (...a: unknown[]) => Promise<void>;
    return (...args: unknown[]) => {
      const base = String(args[0]).split("/").pop() ?? "";
      if (name === op && base.startsWith(prefix!) && ++seen === Number(nth)) process.kill(process.pid, "SIGKILL");
      return real(...args);
    };
  };
  return { ...host, rename: wrap("rename"), rm: wrap("rm") } as Host;
}

const fail = defineStep({
  kind: "test.fail",
  params: (p: null) => p,
  observe: async () => null,
  apply: async () => { throw new Error("health check failed"); },
  undo: async () => {},
});

export default defineConfig({
  hosts: { local: killing(localHost({ stateDir: \`\${root}/state\` })) },
  atoms: {
    release: (v) => atom("release", { steps: [
      untar({ archive: \`\${root}/app.tar.gz\`, path: \`\${root}/srv/releases/2\` }, { name: "extract" }),
      swapSymlink({ link: \`\${root}/srv/current\`, target: "releases/2" }, { name: "link" }),
      ...(v.fail ? [fail(null, { name: "health" })] : []),
    ] }),
  },
});
`;
}
