import { rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runInChild, waitUntil } from "../src/index";

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

// a deployer that prints where it is, then hangs until killed
const HANGS = `
  process.stdout.write("step 1 done\\n");
  process.stderr.write("holding step 2\\n");
  setInterval(() => {}, 1000);
`;

describe("runInChild", () => {
  it("waits for a marker line, SIGKILLs the child there and returns what it printed", async () => {
    const child = runInChild({ source: HANGS });
    // stdout and stderr are two pipes: either may be read first
    await child.waitFor(
      () => child.stdout.includes("step 1 done") && child.stderr.includes("holding step 2"),
    );
    const end = await child.kill();
    expect(end).toEqual({
      code: null,
      signal: "SIGKILL",
      stdout: "step 1 done\n",
      stderr: "holding step 2\n",
    });
    expect(alive(child.pid as number)).toBe(false);
  });

  it("runs a module file with argv, env and stdin, and reports its exit", async () => {
    const file = join(tmpdir(), `atomkit-child-${process.pid}-${Date.now()}.mjs`);
    await writeFile(
      file,
      `let input = ""; for await (const c of process.stdin) input += c;
       console.log(JSON.stringify({ args: process.argv.slice(2), env: process.env.ATOMKIT_T, gone: process.env.HOME === undefined, input }));
       process.exit(3);`,
    );
    const child = runInChild(file, {
      args: ["a b", "'$(x)'"],
      env: { ATOMKIT_T: "set", HOME: undefined },
      input: "secret on stdin",
    });
    const end = await child.exited.finally(() => rm(file, { force: true }));
    expect(end.code).toBe(3);
    expect(JSON.parse(end.stdout)).toEqual({
      args: ["a b", "'$(x)'"],
      env: "set",
      gone: true,
      input: "secret on stdin",
    });
  });

  it("waitFor fails at once, with the output, when the child exits before the marker", async () => {
    const child = runInChild({ source: `console.log("boom"); process.exit(2);` });
    const error = await child.waitFor("never printed").catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/exited \(code 2\) before never printed:\nstdout: boom/);
  });

  it("waitFor takes a regular expression or a condition", async () => {
    const child = runInChild({ source: HANGS });
    await child.waitFor(/step \d done/);
    await child.waitFor(() => child.stderr.includes("step 2"));
    await child.kill();
  });

  let leftRunning: number | undefined;
  it("a child left running is killed when its test ends", async () => {
    const child = runInChild({ source: HANGS });
    await child.waitFor("holding step 2");
    leftRunning = child.pid;
  });
  it("(the child of the test before is gone)", async () => {
    expect(leftRunning).toBeTypeOf("number");
    await waitUntil(() => !alive(leftRunning as number), "the child left running to be killed");
  });
});
