import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { atom, defineStep, fileTrail, run } from "../src/index";
import { Redactor } from "../src/kit";
import { tempDir, testHost } from "./_helpers";

// A secret like `2026` (a PIN, a port, a year) sits inside every run id and timestamp of the year. The
// trail's own fields are never masked; neither may the run ids and times a message quotes: a hint
// saying `atomkit recover ***1201T…` sends the user nowhere, and they reveal nothing secret.
const YEAR = String(new Date().getUTCFullYear());

describe("masking leaves run ids and timestamps in messages whole", () => {
  it("masks the secret, not the run id or time that contains it", () => {
    const r = new Redactor();
    r.addValues([YEAR]);
    const id = `${YEAR}1201T235919173Z-6073b6`;
    const older = `${YEAR}1201T235919Z-6073b6`; // run ids before they had milliseconds
    const at = `${YEAR}-12-01T23:59:19.173Z`;
    expect(
      r.text(`then \`atomkit recover ${id}\` (or ${older}, failed at ${at}); pin ${YEAR}, ${YEAR}1`),
    ).toBe(`then \`atomkit recover ${id}\` (or ${older}, failed at ${at}); pin ***, ***1`);
    // a secret that is a whole timestamp is still a secret
    const whole = new Redactor();
    whole.addValues([at]);
    expect(whole.text(`expires ${at}`)).toBe("expires ***");
    // a secret that reaches over the edge of a run id is masked whole
    const over = new Redactor();
    over.addValues([`x-${id.slice(0, 12)}`]);
    expect(over.text(`key x-${id}`)).toBe(`key ***${id.slice(12)}`);
  });

  it("a failed rollback's hint in the trail names the run to recover with its id intact", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      let value: string | null = null;
      // its undo does nothing: verify fails, and the error tells how to finish the rollback
      const stuck = defineStep({
        kind: "test.stuck",
        params: (p: { pin: string }) => p,
        secret: ["pin"],
        observe: async () => value,
        apply: async () => {
          value = "changed";
          throw new Error("health check failed");
        },
        undo: async () => {},
      });
      const trail = fileTrail({ dir: join(dir, "trails"), key: false });
      const r = await run(atom("a", { steps: [stuck({ pin: YEAR }, { name: "s" })] }), {
        host: testHost(dir),
        trail,
        backoffMs: 0,
      });
      expect(r.status).toBe("rollback-failed");
      const failed = (await trail.readRun(r.runId)).find((x) => x.t === "step" && x.status === "undo-failed");
      expect(failed?.t === "step" && failed.error?.hint).toContain(`atomkit recover ${r.runId}`);
    } finally {
      await cleanup();
    }
  });
});
