import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// the CLI package's browser harness (Debian's Chromium through playwright-core), not a second copy
import { launch, noChromium, openReport, screenshot } from "../../../packages/cli/test/_browser";
import { runCli } from "./_cli-project";
import { demo } from "./_demo";

// The demo as a user runs it (`npm run demo -- --keep`), then `atomkit report` on its trail, opened in
// Chromium: the broken v3 and its rollback, and the last act (the rollback to v1), every undo verified.

const skip = noChromium();

describe.skipIf(skip)("atomkit report on the demo's trail, in Chromium", () => {
  let work = "";
  let trails = "";
  let browser: Awaited<ReturnType<typeof launch>>;
  beforeAll(async () => {
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
    if (!work) return;
    // --keep leaves the app running: stop it, then remove what the demo kept
    const pid = Number((await readFile(join(work, "app/app.pid"), "utf8").catch(() => "")).trim());
    if (pid > 0)
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
    await rm(work, { recursive: true, force: true, maxRetries: 10 });
  });

  it("shows the broken v3 rolled back and the rollback to v1, every undo verified", async () => {
    const r = await demo(["--keep"]);
    work = /kept: (\S+)/.exec(r.stdout)?.[1] ?? "";
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const hint = /report: npx atomkit report --last --trail (\S+)/.exec(r.stdout);
    expect(hint, r.stdout).toBeTruthy();
    trails = hint![1]!;

    // what the demo tells the user to run, from anywhere (no deploy file needed)
    const last = await runCli(work, ["report", "--last", "--trail", trails, "-o", join(work, "last.html")]);
    expect(last.code, last.stderr).toBe(0);
    const runs = (await runCli(work, ["trail", "--json", "--trail", trails])).stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { fleet?: string; mode: string; meta?: { vars?: { version?: string } } });
    const v3 = runs.find((x) => x.mode === "run" && x.meta?.vars?.version === "v3")?.fleet;
    expect(v3).toBeTruthy();
    const broken = await runCli(work, ["report", v3!, "--trail", trails, "-o", join(work, "v3.html")]);
    expect(broken.code, broken.stderr).toBe(0);

    const o = await openReport(browser, join(work, "v3.html"));
    try {
      expect(o.text).toMatch(/^ROLLED-BACK\s+release/m);
      expect(o.text).toMatch(/vars\s+version=v3/);
      expect(o.text).toMatch(/Step start on local: (apply failed: )?the process did not become healthy/);
      expect(o.text).toMatch(/every one verified/);
      const steps = o.page.locator("details.step");
      const undone = o.page.locator("details.step.s-undone");
      // every step that ran was undone and verified; only a never-reached post step stays pending
      expect(await undone.count()).toBeGreaterThanOrEqual(5);
      expect(await steps.count()).toBe(
        (await undone.count()) + (await o.page.locator("details.step.s-pending").count()),
      );
      expect(await o.page.locator("details.step:has(.fail) summary b").innerText()).toBe("start");
      expect(await o.page.locator(".rbband").count()).toBe(1);
      expect(o.requests).toEqual([]);
      await screenshot(o.page, "demo-v3");
    } finally {
      await o.close();
    }

    const back = await openReport(browser, join(work, "last.html"));
    try {
      expect(back.text).toMatch(/^ROLLED-BACK\s+release · fleet undo/m);
      expect(back.text).toMatch(/undo of/);
      expect(await back.page.locator(".step1").count()).toBeGreaterThanOrEqual(5);
      for (const line of await back.page.locator(".step1").allInnerTexts())
        expect(line).toContain("✓ undo verified");
      expect(back.requests).toEqual([]);
      await screenshot(back.page, "demo-rollback");
    } finally {
      await back.close();
    }
  });
});
