import { copyFile, mkdir, mkdtemp, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { serviceMissing, testbedEnv } from "@atomkit/testkit";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bigFleetTrail } from "../bench/big-fleet.mjs";
import { launch, noChromium, openReport, screenshot } from "./_browser";
import { atomkit } from "./_project";

// Fleet reports from real trails: 8 hosts over the real sshd instances with rollback-all (the picture
// in the root README), and 200 hosts × 7 steps through runFleet (size and usability at scale).

const PACKAGES = resolve(__dirname, "../..");
const env = testbedEnv("sshd.env");
const ports = (env.ATOMKIT_SSH_PORTS ?? "").split(" ").filter(Boolean).map(Number);
const noChrome = noChromium();
const noSshd =
  !noChrome &&
  serviceMissing(
    "sshd (4 ports)",
    ports.length >= 4 && !!env.ATOMKIT_SSH_KEY,
    "run: bash scripts/testbed/sshd.sh start 2222 2223 2224 2225",
  );
/** `scripts/report-screenshot.sh` sets this to keep the README's picture current. */
const README_PICTURE = process.env.ATOMKIT_REPORT_PICTURE;

let browser: Browser;
beforeAll(async () => {
  if (!noChrome) browser = await launch();
});
afterAll(() => browser?.close());

describe.skipIf(noChrome || noSshd)("a fleet report: 8 hosts over real sshd, one fails, rollback-all", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "atomkit-report-fleet-"));
    await mkdir(join(dir, "node_modules/@atomkit"), { recursive: true });
    for (const pkg of ["core", "cli", "step-ssh"])
      await symlink(join(PACKAGES, pkg), join(dir, "node_modules/@atomkit", pkg));
    const hosts = Array.from({ length: 8 }, (_, i) => {
      const sshPort = ports[i % 4]!;
      const base = join(dir, "hosts", `web-${i + 1}`);
      return `    "web-${i + 1}": { host: () => sshHost({ name: "web-${i + 1}", host: ${JSON.stringify(env.ATOMKIT_SSH_HOST ?? "127.0.0.1")}, port: ${sshPort}, username: ${JSON.stringify(env.ATOMKIT_SSH_USER ?? "root")}, privateKey: readFileSync(${JSON.stringify(env.ATOMKIT_SSH_KEY)}), knownHosts: ${JSON.stringify(env.ATOMKIT_SSH_KNOWN_HOSTS)}, stateDir: ${JSON.stringify(`${base}/.state`)} }), vars: { base: ${JSON.stringify(base)}${i === 5 ? `, broken: "yes"` : ""} } },`;
    }).join("\n");
    await writeFile(
      join(dir, "atomkit.config.ts"),
      `import { readFileSync } from "node:fs";
import { atom, defineStep, isNotFound } from "@atomkit/core";
import { defineAtom, defineConfig } from "@atomkit/cli";
import { sshHost } from "@atomkit/step-ssh";

// a file on the host, through the SSH connection (SFTP): what a release's steps change
const file = defineStep({
  kind: "demo.file",
  params: (p: { path: string; content: string; fail?: string }) => p,
  describe: (p) => \`\${p.path} = \${p.content}\`,
  observe: async (ctx, p) => {
    try { return (await ctx.host.readFile(p.path)).toString(); } catch (e) { if (isNotFound(e)) return null; throw e; }
  },
  apply: async (ctx, p) => {
    await ctx.host.writeFile(p.path, p.content);
    if (p.fail) throw new Error(p.fail);
  },
  undo: async (ctx, p, before) => {
    if (before === null) await ctx.host.rm(p.path, { force: true }); else await ctx.host.writeFile(p.path, before);
  },
});

export default defineConfig({
  hosts: {
${hosts}
  },
  atoms: {
    setup: defineAtom({ vars: { base: {}, broken: { default: "" } }, atom: ({ base }) => atom("setup", { steps: [file({ path: \`\${base}.setup\`, content: "ok" }, { name: "setup" })] }) }),
    release: defineAtom({
      vars: { version: {}, base: {}, broken: { default: "" } },
      atom: ({ version, base, broken }) =>
        atom("release", {
          steps: [
            file({ path: \`\${base}.upload\`, content: \`app-\${version}.tar.gz\` }, { name: "upload" }),
            file({ path: \`\${base}.release\`, content: version }, { name: "unpack" }),
            file({ path: \`\${base}.current\`, content: \`releases/\${version}\` }, { name: "link" }),
            file(
              { path: \`\${base}.serving\`, content: version, ...(broken && version === "v2" ? { fail: "health check failed: GET /health answered 503" } : {}) },
              { name: "restart" },
            ),
          ],
        }),
    }),
  },
});
`,
    );
    await mkdir(join(dir, "hosts"), { recursive: true });
  });
  afterAll(() => rm(dir, { recursive: true, force: true, maxRetries: 10 }));

  it("shows the failing host and step, the rollback drawn across the hosts it touched, every undo verified", async () => {
    const cli = (args: string[]) => atomkit(dir, args);
    const setup = await cli(["run", "setup"]);
    expect(setup.code, setup.stderr).toBe(0);
    const v1 = await cli(["run", "release", "--var", "version=v1"]);
    expect(v1.code, v1.stderr).toBe(0);
    const v2 = await cli([
      "run",
      "release",
      "--var",
      "version=v2",
      "--batch",
      "2,100%",
      "--on-failure",
      "rollback-all",
    ]);
    expect(v2.code, v2.stderr).toBe(3);
    const fleetId = /fleet (\S+) rolled-back/.exec(v2.stderr)?.[1];
    expect(fleetId, v2.stderr).toBeTruthy();
    const file = join(dir, "fleet.html");
    const r = await cli(["report", "--last", "-o", file]);
    expect(r.code, r.stderr).toBe(0);

    const o = await openReport(browser, file);
    try {
      expect(o.text).toMatch(/^ROLLED-BACK\s+release · fleet run on 8 hosts/m);
      expect(o.text).toContain(fleetId);
      // vars every host ran with in the header, a host's own on its line
      expect(o.text).toMatch(/vars\s+version=v2/);
      expect(await o.page.locator("#host-web-6 > summary").innerText()).toContain("broken=yes");
      expect(o.text).toMatch(
        /Step restart on web-6: apply failed: health check failed: GET \/health answered 503\./,
      );
      expect(o.text).toMatch(/every one verified/);
      // every host row on the timeline, in two batches, the failure line and the rollback band
      expect(await o.page.locator(".tl .row").count()).toBe(8);
      expect(await o.page.locator(".tl .batch").allInnerTexts()).toEqual(["batch 1", "batch 2"]);
      expect(await o.page.locator(".fline").innerText()).toContain("restart on web-6");
      expect(await o.page.locator(".rbband").count()).toBe(1);
      // every host that changed anything was rolled back, and nothing stayed changed
      const groups = await o.page.locator("details.group > summary").allInnerTexts();
      expect(groups.join(" | ")).not.toMatch(/rollback failed|committed|unfinished/);
      const hostsUndone = await o.page
        .locator("details.host")
        .filter({ has: o.page.locator(".step1, details.step.s-undone") })
        .count();
      expect(hostsUndone).toBeGreaterThanOrEqual(3); // web-1, web-2 (batch 1) and web-6 at least
      expect(await o.page.locator("details.step.s-undo-failed, details.step.s-drift").count()).toBe(0);
      // batch 1's hosts were undone by the fleet after web-6 failed: an undo run linked to their run
      const web1 = o.page.locator("#host-web-1");
      expect(await web1.innerText()).toMatch(/undo of \S+[\s\S]*rolled-back/i);
      expect((await web1.locator(".step1").allInnerTexts()).every((t) => t.includes("✓ undo verified"))).toBe(
        true,
      );
      expect(o.requests).toEqual([]);
      expect(o.errors).toEqual([]);
      const shot = await screenshot(o.page, "report-fleet-8");
      const top = await screenshot(o.page, "report-fleet-8-top", false);
      expect((await stat(shot)).size).toBeGreaterThan(10_000);
      if (README_PICTURE) {
        await mkdir(dirname(README_PICTURE), { recursive: true });
        await copyFile(top, README_PICTURE);
      }
    } finally {
      await o.close();
    }
  });
});

describe.skipIf(noChrome)("a fleet report at scale: 200 hosts × 7 steps", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "atomkit-report-200-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true, maxRetries: 10 }));

  it("stays under 2 MB, lists all 200 hosts grouped by outcome, folded, with the failing host open", async () => {
    const { trailDir, fleetId, status } = await bigFleetTrail(dir, { hosts: 200, failAt: 150 });
    expect(status).toBe("rolled-back");
    const file = join(dir, "big.html");
    const r = await atomkit(dir, ["report", fleetId, "--trail", trailDir, "-o", file]);
    expect(r.code, r.stderr).toBe(0);
    expect((await stat(file)).size).toBeLessThanOrEqual(2 * 1024 * 1024);
    const o = await openReport(browser, file);
    try {
      expect(o.text).toMatch(/fleet run on 200 hosts/);
      expect(o.text).toMatch(/Step health on web-150: apply failed/);
      expect(await o.page.locator(".tl .row").count()).toBe(200);
      expect(await o.page.locator("details.host").count()).toBe(200);
      // group counts add up to the fleet, and only the failing host is unfolded among the rolled back
      const counts = await o.page.locator("details.group > summary .badge").allInnerTexts();
      expect(counts.map(Number).reduce((a, b) => a + b, 0)).toBe(200);
      expect(await o.page.locator("details.host[open]").evaluateAll((els) => els.map((e) => e.id))).toContain(
        "host-web-150",
      );
      expect(await o.page.locator("details.host[open]").count()).toBeLessThan(30);
      expect(await o.page.locator("details.step.s-undo-failed, details.step.s-drift").count()).toBe(0);
      expect(o.requests).toEqual([]);
      await screenshot(o.page, "report-fleet-200-top", false);
    } finally {
      await o.close();
    }
  });
});
