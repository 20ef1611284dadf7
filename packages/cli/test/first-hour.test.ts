import { spawn } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { freePort } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { atomkit, BIN, linkedDir } from "./_project";

// What a new user meets in the first hour: a mistyped flag, a deploy file without hosts, plan's file
// modes, a terminal that reports no size.

let dir: string;
beforeEach(async () => {
  dir = await linkedDir("atomkit-first-hour-", ["core", "cli", "step-fs", "step-process", "step-symlink"]);
});
afterEach(async () => {
  const pid = Number((await readFile(join(dir, "deploy/app.pid"), "utf8").catch(() => "")).trim());
  if (pid > 0)
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  await rm(dir, { recursive: true, force: true, maxRetries: 10 });
});

describe("the first hour", () => {
  it("--version prints the package's version (without loading the CLI or a deploy file)", async () => {
    await writeFile(join(dir, "atomkit.config.ts"), "this is not TypeScript (");
    const r = await atomkit(dir, ["--version"]);
    expect(r.code).toBe(0);
    const { version } = JSON.parse(await readFile(join(__dirname, "..", "package.json"), "utf8"));
    expect(r.stdout).toBe(`${version}\n`);
  });

  it("a mistyped flag: one line with the flag meant, and only that command's usage (exit 2)", async () => {
    const r = await atomkit(dir, ["run", "release", "--vars", "version=1"]);
    expect(r.code).toBe(2);
    const [first, ...rest] = r.stderr.trim().split("\n");
    expect(first).toBe("unknown option --vars; did you mean --var?");
    expect(rest[0]).toBe("usage:");
    expect(rest[1]).toMatch(/^ {2}atomkit run <atom>/);
    expect(r.stderr).not.toMatch(/atomkit rollback|atomkit init/);
    const far = await atomkit(dir, ["rollback", "--xyzzy"]);
    expect(far.stderr.split("\n")[0]).toBe("unknown option --xyzzy");
    expect(far.stderr).toMatch(/usage:\n {2}atomkit rollback/);
  });

  it("a deploy file with no hosts is an error that names the fix, not a deploy to this machine", async () => {
    await writeFile(
      join(dir, "atomkit.config.ts"),
      `import { atom } from "@atomkit/core";
import { defineConfig } from "@atomkit/cli";
import { makeDir } from "@atomkit/step-fs";
export default defineConfig({ hosts: {}, atoms: { release: () => atom("release", { steps: [makeDir({ path: ${JSON.stringify(join(dir, "out"))} })] }) } });
`,
    );
    for (const command of ["run", "plan"]) {
      const r = await atomkit(dir, [command, "release"]);
      expect(r.code, command).toBe(2);
      expect(r.stderr).toMatch(/has no hosts[\s\S]*hosts: \{ local: localHost\(\) \}/);
    }
    const ls = await atomkit(dir, ["trail"]);
    expect(ls.code).toBe(0); // reading the trail needs no host
  });

  it("every invalid field of a step at once: plan and run name each, with expected and found", async () => {
    await writeFile(
      join(dir, "atomkit.config.ts"),
      `import { atom, localHost } from "@atomkit/core";
import { defineConfig } from "@atomkit/cli";
import { startProcess } from "@atomkit/step-process";
export default defineConfig({
  hosts: { local: localHost({ stateDir: ${JSON.stringify(join(dir, "state"))} }) },
  atoms: { release: () => atom("release", { steps: [startProcess({ command: ["node", "server.js"], pidFile: "run/app.pid", cwd: "srv/app", health: { htp: { port: 8080 } } } as never, { name: "start" })] }) },
});
`,
    );
    for (const command of ["plan", "run"]) {
      const r = await atomkit(dir, [command, "release"]);
      expect(r.code, command).toBe(2);
      const lines = r.stderr.trim().split("\n");
      expect(lines[0]).toMatch(/invalid params, nothing was run:$/);
      expect(lines.slice(1, 4)).toEqual([
        '  - step "start" (process.start) field "cwd": expected an absolute path on the host, found "srv/app"',
        '  - step "start" (process.start) field "pidFile": expected an absolute path on the host, found "run/app.pid"',
        '  - step "start" (process.start) field "health.htp": unknown param "htp"; did you mean "http"? (known: http, tcp, exec, logLine, timeoutMs, intervalMs)',
      ]);
    }
    const json = await atomkit(dir, ["plan", "release", "--json"]);
    const error = JSON.parse(json.stdout.trim().split("\n").at(-1)!).error;
    expect(error.issues.map((i: { path: string }) => i.path)).toEqual(["cwd", "pidFile", "health.htp"]);
  });

  it("plan shows file modes as people write them (0o755), and a 0×0 terminal gets plain lines", async () => {
    expect((await atomkit(dir, ["init"])).code).toBe(0);
    const plan = await atomkit(dir, ["plan", "release", "--var", "version=1"]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain('"mode":"0o755"');
    expect(plan.stdout).not.toContain('"mode":493');

    // `script` gives the CLI a pseudo-terminal; without a controlling terminal of its own it is 0×0,
    // where a redrawn tree shows nothing but cursor moves
    const port = await freePort();
    const out = await new Promise<string>((done) => {
      const command = `${process.execPath} ${BIN} run release --var version=1 --var port=${port}`;
      const child = spawn("script", ["-qec", command, "/dev/null"], {
        cwd: dir,
        env: { ...process.env, CI: "", NO_COLOR: "1", COLUMNS: "", LINES: "" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let text = "";
      child.stdout.on("data", (d: Buffer) => {
        text += d;
      });
      child.on("close", () => done(text));
    });
    expect(out).toMatch(/\[local\] ▸ link symlink\.swap/);
    expect(out).toMatch(/\[local\] ■ committed/);
  });
});
