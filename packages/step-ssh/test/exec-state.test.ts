// ssh.exec's state check (a trail is evidence) and its cleanup of interrupted marker writes.
import { readdirSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { atom, type Host, localHost, run } from "@atomkit/core";
import { stepContext } from "@atomkit/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { execCommand } from "../src/index";
import { noSshd, tempDir, testHost, withStateDir } from "./_testbed";

const state = execCommand.definition.state as (input: unknown) => unknown;

describe("ssh.exec state check", () => {
  it.each([
    { stdout: "v42", code: 0 },
    { stdout: "", code: 3 },
    { stdout: "killed", code: null },
    { appliedBy: "20261201T225233Z-ab12/reload app" },
    { appliedBy: "run-1/step/with/slashes" },
    { appliedBy: null },
  ])("accepts what observe returns: %j", (s) => {
    expect(state(JSON.parse(JSON.stringify(s)))).toEqual(s);
  });

  it.each([
    [null, ""],
    ["v42", ""],
    [[], ""],
    [{}, ""],
    [{ stdout: "v42" }, ""],
    [{ stdout: "v42", code: 0, extra: 1 }, ""],
    [{ appliedBy: "run/step", stdout: "x", code: 0 }, ""],
    [{ stdout: 42, code: 0 }, "stdout"],
    [{ stdout: " untrimmed\n", code: 0 }, "stdout"],
    [{ stdout: "x", code: "0" }, "code"],
    [{ stdout: "x", code: 1.5 }, "code"],
    [{ stdout: "x", code: -1 }, "code"],
    [{ stdout: "x", code: 256 }, "code"],
    [{ appliedBy: 7 }, "appliedBy"],
    [{ appliedBy: "" }, "appliedBy"],
    [{ appliedBy: "no-step" }, "appliedBy"],
    [{ appliedBy: "/step" }, "appliedBy"],
    [{ appliedBy: "run/step\nrm -rf /" }, "appliedBy"],
    [{ appliedBy: `run/${"x".repeat(600)}` }, "appliedBy"],
  ])("refuses %j (field %j)", (input, field) => {
    let error: unknown;
    try {
      state(input);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ name: "ParamsFieldError", path: field });
    expect(String((error as Error).message)).toMatch(/expected/);
  });
});

/** An interrupted marker write: a temp name beside the marker, as writeFile leaves it. */
async function cleanupLeavesOnlyTheMarker(host: Host, dir: string) {
  const step = execCommand({ command: ["touch", `${dir}/done`], undo: ["rm", "-f", `${dir}/done`] });
  const r = await run(atom("marked", { steps: [step] }), { host, lock: false });
  expect(r.status, r.error?.message).toBe("committed");
  const markers = `${host.stateDir}/ssh-exec`;
  const [marker] = readdirSync(markers);
  expect(marker).toMatch(/^[0-9a-f]{32}\.json$/);
  await writeFile(`${markers}/.${marker}.atomkit-deadbeef`, '{"appliedBy":');
  await writeFile(`${markers}/.other.json.atomkit-deadbeef`, "another step's");
  const ctx = stepContext({ host, runId: "cleanup", step: "x" });
  const params = step.definition.params as (i: unknown) => never;
  const p = params(step.params);
  const before = await step.definition.observe(ctx, p);
  await step.definition.cleanup?.(ctx, p);
  expect(readdirSync(markers).sort()).toEqual([".other.json.atomkit-deadbeef", marker]);
  expect(await step.definition.observe(ctx, p)).toEqual(before);
  expect(before).toEqual({ appliedBy: `${r.runId}/ssh.exec` });
  // nothing to clean when the marker directory was never made
  await step.definition.cleanup?.({ ...ctx, host: localHost({ stateDir: `${dir}/none` }) }, p);
}

describe("ssh.exec cleanup", () => {
  it("removes the temp names of its own marker only, and keeps the state (localHost)", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      await mkdir(`${dir}/state`);
      await cleanupLeavesOnlyTheMarker(localHost({ stateDir: `${dir}/state` }), dir);
    } finally {
      await cleanup();
    }
  });
});

describe("ssh.exec undo from a recorded state", () => {
  it.each([
    [{ check: ["cat", "f"] }, { appliedBy: null }],
    [{}, { stdout: "", code: 0 }],
  ])(
    "refuses a state of the other shape (params %j, state %j) without running anything",
    async (extra, before) => {
      const { dir, cleanup } = await tempDir();
      try {
        const step = execCommand({ command: ["true"], undo: ["touch", `${dir}/undone`], ...extra });
        const host = localHost({ stateDir: `${dir}/state` });
        const ctx = stepContext({ host, runId: "r", step: "s" });
        const err = await step.definition
          .undo(ctx, step.params as never, before as never, before as never)
          .catch((e: unknown) => e);
        // called outside a run: the kind's own failure (a run adds atom, host, step, kind and phase)
        expect(err).toMatchObject({
          code: "ATOM_STEP_FAILED",
          shortMessage: "the recorded state does not fit the step's params",
        });
        expect(readdirSync(dir)).toEqual([]);
      } finally {
        await cleanup();
      }
    },
  );
});

describe.skipIf(noSshd)("ssh.exec cleanup over SSH", () => {
  const ssh = testHost();
  afterAll(() => ssh.close());

  it("removes the temp names of its own marker only, and keeps the state (sshHost)", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      await mkdir(`${dir}/state`);
      await cleanupLeavesOnlyTheMarker(withStateDir(ssh, `${dir}/state`), dir);
    } finally {
      await cleanup();
    }
  });

  it("with check there is no marker, so nothing to clean", async () => {
    const step = execCommand({ command: ["true"], undo: ["true"], check: ["true"] });
    const { dir, cleanup } = await tempDir();
    try {
      await mkdir(`${dir}/ssh-exec`);
      await writeFile(`${dir}/ssh-exec/.x.atomkit-deadbeef`, "");
      const host = withStateDir(ssh, dir);
      const ctx = stepContext({ host, runId: "r", step: "s" });
      await step.definition.cleanup?.(ctx, step.params as never);
      expect(readdirSync(`${dir}/ssh-exec`)).toEqual([".x.atomkit-deadbeef"]);
    } finally {
      await cleanup();
    }
  });
});
