import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { hashTree } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { atomkit, makeProject, until } from "./_project";

let p: Awaited<ReturnType<typeof makeProject>>;
beforeEach(async () => {
  p = await makeProject();
});
afterEach(() => p.cleanup());

const read = (path: string) => readFile(path, "utf8").catch(() => null);
const runIdOf = (text: string) => /run release (\S+)/.exec(text)?.[1] ?? "";
/** Sends `signal` once the hanging step "page" has written its page: interrupted mid-step, on any box. */
const whenPageWritten = (signal: NodeJS.Signals) => {
  let sent = false;
  return (text: string, kill: (s: NodeJS.Signals) => void) => {
    if (sent || !text.includes("▸ page")) return;
    sent = true;
    void until(async () => (await read(join(p.www, "index.html"))) === "v1").then(() => kill(signal));
  };
};

describe("atomkit (the built binary, as a user runs it)", () => {
  it("run commits with exit 0 and plain progress lines; trail lists the run", async () => {
    const r = await atomkit(p.dir, ["run", "release", "--var", "v=2"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\[local\] ▸ drain project.write: write .*\/www\/drain/);
    expect(r.stdout).toMatch(/✓ page \d+ms/);
    expect(r.stdout).toMatch(/■ committed in/);
    expect(await read(join(p.www, "index.html"))).toBe("v2");
    const t = await atomkit(p.dir, ["trail"]);
    expect(t.stdout).toMatch(new RegExp(`${runIdOf(r.stdout)}\\s+release\\s+local\\s+run\\s+committed`));
    const one = await atomkit(p.dir, ["trail", runIdOf(r.stdout)]);
    expect(one.stdout).toMatch(/page\s+project.write\s+applied\s+null → "v2"/);
  });

  it("a failing run rolls back verified: exit 3, the error names step, host and cause", async () => {
    const before = await hashTree(p.www);
    const r = await atomkit(p.dir, ["run", "release", "--var", "fail=1"]);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/✗ page failed-changed: apply failed: health check failed/);
    expect(r.stdout).toMatch(/↺ page undone, verified/);
    expect(r.stdout).toMatch(/↺ drain undone, verified/);
    expect(r.stdout).toMatch(/■ rolled-back/);
    expect(r.stderr).toContain('atom "release", host "local", step "page" (project.write), apply');
    expect(await hashTree(p.www)).toBe(before);
  });

  it("--json prints one event per line, from run:start to run:end", async () => {
    const r = await atomkit(p.dir, ["run", "release", "--json"]);
    expect(r.code).toBe(0);
    const events = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(events[0]).toMatchObject({ type: "run:start", atom: "release", host: "local" });
    expect(events.at(-1)).toMatchObject({ type: "run:end", status: "committed" });
    expect(events.filter((e) => e.type === "step:applied").map((e) => e.step)).toEqual([
      "drain",
      "page",
      "version",
    ]);
  });

  it("plan observes and predicts but changes nothing (and --dry-run is plan)", async () => {
    await writeFile(join(p.www, "index.html"), "v1");
    const before = await hashTree(p.dir, { ignore: (x) => x.startsWith("node_modules") });
    for (const args of [
      ["plan", "release", "--var", "v=9"],
      ["run", "release", "--dry-run", "--var", "v=9"],
    ]) {
      const r = await atomkit(p.dir, args);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain("nothing is changed");
      expect(r.stdout).toMatch(/page \[steps\] project.write[\s\S]*now: {2}"v1"\n\s+then: "v9" \(changes\)/);
    }
    expect(await hashTree(p.dir, { ignore: (x) => x.startsWith("node_modules") })).toBe(before);
  });

  it("undo rolls a committed run back (exit 0); a second undo is refused (exit 2); drift is refused (exit 6)", async () => {
    const before = await hashTree(p.www);
    const r = await atomkit(p.dir, ["run", "release", "--var", "v=2"]);
    const id = runIdOf(r.stdout);
    const u = await atomkit(p.dir, ["undo", id]);
    expect(u.code, u.stderr).toBe(0);
    expect(u.stdout).toMatch(/undo release .* of /);
    expect(await hashTree(p.www)).toBe(before);
    expect((await atomkit(p.dir, ["undo", id])).code).toBe(2);

    const r2 = await atomkit(p.dir, ["run", "release", "--var", "v=3"]);
    await writeFile(join(p.www, "index.html"), "hotfix by hand");
    const d = await atomkit(p.dir, ["undo", runIdOf(r2.stdout)]);
    expect(d.code).toBe(6);
    expect(d.stderr).toMatch(
      /nothing was undone[\s\S]*expected: v3\n\s+found: +hotfix by hand[\s\S]*--force/,
    );
    expect(await read(join(p.www, "index.html"))).toBe("hotfix by hand");
    expect((await atomkit(p.dir, ["undo", runIdOf(r2.stdout), "--force"])).code).toBe(0);
    expect(await hashTree(p.www)).toBe(before);
  });

  it("undo gives a step its secret params back from the deploy file; they never reach the trail", async () => {
    const r = await atomkit(p.dir, ["run", "session"]);
    expect(r.code, r.stderr).toBe(0);
    const id = /run session (\S+)/.exec(r.stdout)?.[1] ?? "";
    const u = await atomkit(p.dir, ["undo", id]);
    expect(u.code, u.stderr).toBe(0);
    expect(await read(join(p.www, "session"))).toBeNull();
    const { readdir } = await import("node:fs/promises");
    const dir = join(p.dir, ".atomkit/trails");
    for (const f of await readdir(dir))
      expect(await readFile(join(dir, f), "utf8")).not.toContain("tok-s3cr3t-value");
  });

  it("undo builds atoms with the --vars the run was made with (recorded in the trail)", async () => {
    const r = await atomkit(p.dir, ["run", "strict", "--var", "v=42"]);
    expect(r.code, r.stderr).toBe(0);
    expect(await read(join(p.www, "strict"))).toBe("42");
    const id = /run strict (\S+)/.exec(r.stdout)?.[1] ?? "";
    const u = await atomkit(p.dir, ["undo", id]);
    expect(u.code, u.stderr).toBe(0);
    expect(await read(join(p.www, "strict"))).toBeNull();
    const bad = await atomkit(p.dir, ["run", "strict"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/atom "strict" of .* could not be built: needs --var v/);
  });

  it("a closed output pipe does not kill the deploy half-way", async () => {
    const { spawn } = await import("node:child_process");
    const { BIN } = await import("./_project");
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [BIN, "run", "release", "--var", "v=7"], {
        cwd: p.dir,
        env: { ...process.env, NO_COLOR: "1" },
      });
      child.stdout.once("data", () => child.stdout.destroy()); // like `| head -1`
      child.stderr.resume();
      child.on("close", resolve);
    });
    expect(code).toBe(0);
    expect(await read(join(p.www, "index.html"))).toBe("v7");
    expect((await atomkit(p.dir, ["trail"])).stdout).toMatch(/committed/);
  });

  it("--json reports errors before a run on stdout too", async () => {
    const r = await atomkit(p.dir, ["run", "release", "--json", "--var", "badpath=relative"]);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({
      type: "error",
      error: { code: "ATOM_PARAMS_INVALID" },
    });
  });

  it("Ctrl-C aborts the step and rolls back (exit 3)", async () => {
    const before = await hashTree(p.www);
    const r = await atomkit(p.dir, ["run", "release", "--var", "hang=1"], {
      onStdout: whenPageWritten("SIGINT"),
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/SIGINT: aborting/);
    expect(r.stdout).toMatch(/■ rolled-back/);
    expect(await hashTree(p.www)).toBe(before);
  });

  it("a second Ctrl-C stops at once (exit 130), leaving the trail for recover", async () => {
    const before = await hashTree(p.www);
    let again = false;
    const r = await atomkit(p.dir, ["run", "release", "--var", "stubborn=1"], {
      onStdout: whenPageWritten("SIGINT"),
      // the second Ctrl-C once the first was taken (two signals sent at once may arrive as one)
      onStderr: (text, kill) => {
        if (again || !/SIGINT: aborting/.test(text)) return;
        again = true;
        kill("SIGINT");
      },
    });
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/SIGINT again: stopping now; run `atomkit recover`/);
    expect((await atomkit(p.dir, ["trail"])).stdout).toContain("unfinished");
    const rec = await atomkit(p.dir, ["recover"]);
    expect(rec.code, rec.stderr).toBe(0);
    expect(await hashTree(p.www)).toBe(before);
  });

  it("a killed run (SIGKILL) is finished by `atomkit recover`", async () => {
    const before = await hashTree(p.www);
    const r = await atomkit(p.dir, ["run", "release", "--var", "hang=1"], {
      onStdout: whenPageWritten("SIGKILL"),
    });
    expect(r.signal).toBe("SIGKILL");
    expect(await read(join(p.www, "index.html"))).toBe("v1");
    const t = await atomkit(p.dir, ["trail"]);
    expect(t.stdout).toContain("unfinished");
    // no new deploy on top of a dead one: it would change what recover must observe
    const again = await atomkit(p.dir, ["run", "release"]);
    expect(again.code).toBe(5);
    // it names who started it and where: a deploy going on right now is someone's
    expect(again.stderr).toMatch(
      /has an unfinished run \S+ \(release, started \S+, by \S+@\S+, pid \d+ on \S+\)/,
    );
    expect(again.stderr).toMatch(/atomkit unlock [\s\S]*atomkit recover/);
    const rec = await atomkit(p.dir, ["recover"]);
    expect(rec.code, rec.stderr).toBe(0);
    expect(rec.stderr).toMatch(/died while applying → rolled-back/);
    expect(await hashTree(p.www)).toBe(before);
  });

  it("invalid input exits 2 naming step and field; nothing ran", async () => {
    const before = await hashTree(p.www);
    const r = await atomkit(p.dir, ["run", "release", "--var", "badpath=relative/x"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/step "version" \(project.write\) field "path": must be an absolute path/);
    expect(await hashTree(p.www)).toBe(before);
    expect((await atomkit(p.dir, ["run", "nope"])).stderr).toMatch(
      /no atom "nope"[\s\S]*expected: session, strict, release/,
    );
    expect((await atomkit(p.dir, ["frobnicate"])).code).toBe(2);
  });

  it("a held lock: run exits 5 naming the holder; unlock shows it and removes it only with --yes", async () => {
    const { localHost } = await import("@atomkit/core");
    const host = localHost({ stateDir: join(p.dir, "state") });
    const lease = await host.lock("deploy", { owner: "alice@ci", note: "run 1234" });
    try {
      const r = await atomkit(p.dir, ["run", "release"]);
      expect(r.code).toBe(5);
      expect(r.stderr).toMatch(/held by alice@ci/);
      const show = await atomkit(p.dir, ["unlock", "local"]);
      expect(show.code).toBe(5);
      expect(show.stdout).toMatch(
        /held by alice@ci .* \(alive\); run 1234\nto remove it, run again with --yes/,
      );
      const yes = await atomkit(p.dir, ["unlock", "local", "--yes"]);
      expect(yes.stdout).toContain("removed");
      expect((await atomkit(p.dir, ["run", "release"])).code).toBe(0);
    } finally {
      await lease.release();
    }
  });
});
