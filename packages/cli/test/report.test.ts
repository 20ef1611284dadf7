/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launch, noChromium, openReport, screenshot } from "./_browser";
import { atomkit } from "./_project";
import { reportProject } from "./_report-project";

// `atomkit report` from real trails (real runs of a real file step kind through the built CLI), opened
// in the real Chromium: what a person sees, that the page calls nothing outside itself, and that text
// from the trail never runs.

const skip = noChromium();

describe.skipIf(skip)("atomkit report, in Chromium", () => {
  let browser: Browser;
  let project: Awaited<ReturnType<typeof reportProject>>;
  const cli = (args: string[]) => atomkit(project.dir, args);
  const report = async (args: string[], out: string) => {
    const file = join(project.dir, out);
    const r = await cli(["report", ...args, "-o", file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(file);
    return file;
  };
  const lastRunId = async () => {
    const r = await cli(["trail", "--json"]);
    return (JSON.parse(r.stdout.trim().split("\n").pop()!) as { runId: string }).runId;
  };

  beforeAll(async () => {
    browser = await launch();
    project = await reportProject();
  });
  afterAll(async () => {
    await browser?.close();
    await project?.cleanup();
  });

  it("a committed release: outcome, vars, who ran it, both steps applied; no request leaves the page", async () => {
    const run = await cli(["run", "release", "--var", "v=1"]);
    expect(run.code, run.stderr).toBe(0);
    const file = await report(["--last"], "committed.html");
    const o = await openReport(browser, file);
    try {
      expect(o.text).toMatch(/^COMMITTED\s+release/m);
      expect(o.text).toContain("v=1");
      expect(o.text).toContain(await lastRunId());
      expect(o.text).toMatch(/by\s+\S+@\S+/);
      expect(await o.page.locator("details.step").count()).toBe(2);
      expect(await o.page.locator("details.step .st").allInnerTexts()).toEqual(["applied", "applied"]);
      expect(await o.page.locator(".seg.p-apply").count()).toBe(2);
      expect(o.requests).toEqual([]);
      expect(o.errors).toEqual([]);
      await screenshot(o.page, "report-committed");
    } finally {
      await o.close();
    }
  });

  it("a rolled-back release: the failing step marked, its error, every undo verified on the timeline", async () => {
    const run = await cli([
      "run",
      "release",
      "--var",
      "v=2",
      "--var",
      "fail=health check failed: GET / answered 500",
    ]);
    expect(run.code, run.stderr).toBe(3);
    const file = await report([await lastRunId()], "rolled-back.html");
    const o = await openReport(browser, file);
    try {
      expect(o.text).toMatch(/^ROLLED-BACK\s+release/m);
      expect(o.text).toMatch(
        /Step page on web: apply failed: health check failed: GET \/ answered 500\. Rolled back: 2 undos.*every one verified/,
      );
      expect(await o.page.locator("details.step.s-undone").count()).toBe(2);
      expect(await o.page.locator("details.step >> text=✓ undo verified").count()).toBe(2);
      expect(await o.page.locator("details.step:has(.fail)").locator("summary b").innerText()).toBe("page");
      // the page step's before → after diff: "v1" then "v2"
      const diff = o.page.locator("details.step:has(.fail) table.diff tr").nth(1);
      expect(await diff.locator("td").allInnerTexts()).toEqual(["(whole state)", "v1", "v2"]);
      // timeline: apply, check of the failure, then undo and verify of both steps, the failure line
      for (const phase of ["apply", "check", "undo", "verify"])
        expect(await o.page.locator(`.seg.p-${phase}`).count(), phase).toBeGreaterThan(0);
      expect(await o.page.locator(".seg.failed").count()).toBeGreaterThan(0);
      expect(await o.page.locator(".fline").innerText()).toContain("page on web");
      expect(await o.page.locator(".rbband").count()).toBe(1);
      expect(o.requests).toEqual([]);
      await screenshot(o.page, "report-rolled-back");
    } finally {
      await o.close();
    }
  });

  it("a rollback-failed run: what is still changed, the undo error, and the recover command", async () => {
    const run = await cli(["run", "stuck"]);
    expect(run.code, run.stderr).toBe(4);
    const id = await lastRunId();
    const file = await report([id], "rollback-failed.html");
    const o = await openReport(browser, file);
    try {
      expect(o.text).toMatch(/^ROLLBACK-FAILED\s+stuck/m);
      expect(o.text).toContain(`atomkit recover ${id}`);
      expect(o.text).toMatch(/Still applied on this host: lock/);
      const lock = o.page.locator("details.step.s-undo-failed");
      expect(await lock.locator("summary b").innerText()).toBe("lock");
      expect(await lock.innerText()).toMatch(
        /undo failed[\s\S]*cannot restore \S+\/lock: the disk is read-only/,
      );
      expect(await o.page.locator("details.step.s-undone").count()).toBe(1);
      expect(o.requests).toEqual([]);
      await screenshot(o.page, "report-rollback-failed");
    } finally {
      await o.close();
    }
  });

  it("hostile text from the trail is shown as text and never runs, loads or links anywhere", async () => {
    const hostile = {
      content: `<script>window.__pwned = "script"</script></pre></details><style>body{display:none}</style>${"A".repeat(100_000)}`,
      stepName: `"><img src=x onerror="window.__pwned='img'"><a href="javascript:alert(1)">x</a>`,
      fail: `<svg onload="window.__pwned='svg'"></svg> see javascript:alert(document.domain) or <iframe src="https://example.com/">`,
    };
    const run = await cli([
      "run",
      "release",
      "--var",
      "v=3",
      ...Object.entries(hostile).flatMap(([k, v]) => ["--var", `${k}=${v}`]),
    ]);
    expect(run.code, run.stderr).toBe(3);
    const id = await lastRunId();
    const file = await report([id], "hostile.html");
    const history = await report(["--history"], "hostile-history.html");
    for (const f of [file, history]) {
      const html = await readFile(f, "utf8");
      // as markup: no tag opened, no event handler or javascript: link (escaped text may say anything)
      expect(html).not.toMatch(/<script|<img|<svg|<iframe|\son[a-z]+="|href="javascript/i);
      // the 100,000-character value is clipped, not pasted whole
      expect((await stat(f)).size).toBeLessThan(100_000);
      const o = await openReport(browser, f);
      try {
        expect(await o.page.evaluate(() => (window as { __pwned?: unknown }).__pwned)).toBeUndefined();
        expect(o.dialogs).toEqual([]);
        expect(o.requests).toEqual([]);
        expect(o.errors).toEqual([]);
        expect(
          await o.page.evaluate(
            () => document.querySelectorAll("script, img, svg, iframe, style:not(head style)").length,
          ),
        ).toBe(0);
        const hrefs = await o.page.evaluate(() =>
          [...document.querySelectorAll("a[href]")].map((a) => a.getAttribute("href")),
        );
        for (const h of hrefs) expect(h).toMatch(/^#[A-Za-z0-9_-]+$/);
        // the page is still there and says what happened, with the strings as text
        expect(await o.page.locator("body").isVisible()).toBe(true);
        if (f === file) {
          expect(o.text).toContain(`<script>window.__pwned = "script"</script>`);
          expect(o.text).toContain(
            `<svg onload="window.__pwned='svg'"></svg> see javascript:alert(document.domain)`,
          );
          expect(o.text).toContain(hostile.stepName);
          expect(o.text).toMatch(/more characters\)/);
          await screenshot(o.page, "report-hostile");
        } else expect(o.text).toContain("stepName=");
      } finally {
        await o.close();
      }
    }
  });

  it("history: runs per host over time, what is live, undos linked both ways to the runs they reversed", async () => {
    const v4 = await cli(["run", "release", "--var", "v=4"]);
    expect(v4.code, v4.stderr).toBe(0);
    const v5 = await cli(["run", "release", "--var", "v=5"]);
    expect(v5.code, v5.stderr).toBe(0);
    const v5id = await lastRunId();
    const back = await cli(["rollback", "release"]);
    expect(back.code, back.stderr).toBe(0);
    const undoId = await lastRunId();
    const file = await report(["--history", "--host", "web"], "history.html");
    const o = await openReport(browser, file);
    try {
      const live = o.page.locator("tr.live");
      expect(await live.count()).toBe(1);
      expect(await live.innerText()).toMatch(/web\s+release[\s\S]*v=4/);
      // the undo row links to v5's row and v5's row links back to the undo
      await o.page.locator(`tr#run-${undoId} a`, { hasText: v5id }).click();
      expect(o.page.url()).toMatch(new RegExp(`#run-${v5id}$`));
      expect(await o.page.locator(`tr#run-${v5id}`).innerText()).toContain(`undone by ${undoId}`);
      expect(await o.page.locator(".dot").count()).toBeGreaterThanOrEqual(7);
      expect(o.requests).toEqual([]);
      await screenshot(o.page, "report-history");
    } finally {
      await o.close();
    }
  });
});

describe("atomkit report: input", () => {
  let project: Awaited<ReturnType<typeof reportProject>>;
  beforeAll(async () => {
    project = await reportProject();
  });
  afterAll(() => project?.cleanup());

  it("an unknown id, an empty trail and contradicting flags are refused with exit 2 and a way forward", async () => {
    const none = await atomkit(project.dir, ["report", "--last"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/the trail holds no run to report[\s\S]*atomkit run/);
    const bad = await atomkit(project.dir, ["report", "20990101T000000000Z-abcdef"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/20990101T000000000Z-abcdef/);
    const both = await atomkit(project.dir, ["report", "--history", "--last"]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--history/);
  });

  it("writes beside the trail by default, and to stdout with -o -", async () => {
    const run = await atomkit(project.dir, ["run", "release", "--var", "v=1"]);
    expect(run.code, run.stderr).toBe(0);
    const r = await atomkit(project.dir, ["report", "--last"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toMatch(/\.atomkit\/reports\/\S+\.html$/);
    expect(await readFile(r.stdout.trim(), "utf8")).toMatch(/^<!doctype html>/);
    const out = await atomkit(project.dir, ["report", "--last", "-o", "-"]);
    expect(out.stdout).toMatch(/^<!doctype html>[\s\S]*COMMITTED|committed/);
    expect(out.stdout).toContain("Content-Security-Policy");
  });
});
