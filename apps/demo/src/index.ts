#!/usr/bin/env node
// atomkit demo: the release of DESIGN.md on this machine (or on SSH hosts), with live progress:
// deploy v1, deploy v2, then a broken v3 whose health check fails and is rolled back to v2, verified.
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createRenderer, pickMode } from "@atomkit/cli";
import { fileTrail, type Host, localHost, rollback, runFleet, type TrailStore } from "@atomkit/core";
import { sshHost } from "@atomkit/step-ssh";
import { createColors } from "picocolors";
import { buildRelease } from "./app";
import { probe, stopApp, watchHttp } from "./http";
import { releaseAtom, STEP_NAMES, setupAtom } from "./release";

const USAGE = `atomkit demo [--fail-at <step>] [--hosts user@host:port,...] [--key file] [--known-hosts file]
                [--port n] [--keep] [--json] [--docker]
  --fail-at      one of ${STEP_NAMES.join(", ")}: that step fails (right after its change) in the v2 deploy
  --hosts        deploy over SSH to these hosts instead of this machine
  --key          the SSH private key (default $ATOMKIT_SSH_KEY, else ssh-agent)
  --known-hosts  known_hosts for host key checks (default $ATOMKIT_SSH_KNOWN_HOSTS, else ~/.ssh/known_hosts)
  --port         the app's first port (default: random in 18000-19999)
  --keep         leave the app running and its directory and trail in place
  --json         JSON-lines events instead of the live view
  --docker       the container form: docker.swap of a busybox httpd (needs dockerd and the test images)`;

let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>;
const OPTIONS = {
  hosts: { type: "string" },
  key: { type: "string" },
  "known-hosts": { type: "string" },
  "fail-at": { type: "string" },
  port: { type: "string" },
  keep: { type: "boolean", default: false },
  json: { type: "boolean", default: false },
  docker: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;
try {
  parsed = parseArgs({ options: OPTIONS });
} catch (error) {
  console.error(`${(error as Error).message}\n\n${USAGE}`);
  process.exit(2);
}
const { values } = parsed;

if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (values.docker) {
  const { runDockerDemo } = await import("./docker");
  process.exit(await runDockerDemo());
}
if (values["fail-at"] && !STEP_NAMES.includes(values["fail-at"])) {
  console.error(`--fail-at must be one of ${STEP_NAMES.join(", ")}; found "${values["fail-at"]}"`);
  process.exit(2);
}

const mode = pickMode(process.stdout, values.json, process.env);
const c = createColors(mode.color);
const say = (text = "") => {
  if (!values.json) process.stdout.write(`${text}\n`);
};

const work = await mkdtemp(join(tmpdir(), "atomkit-demo-"));
const basePort = Number(values.port ?? 18_000 + Math.floor(Math.random() * 2_000));
const hosts: Host[] = values.hosts
  ? values.hosts.split(",").map((t, i) => sshTarget(t, i))
  : [localHost({ stateDir: join(work, "state") })];
const baseOf = (h: Host) =>
  h.local ? join(work, "app") : `/tmp/atomkit-demo-${basename(work)}-${hosts.indexOf(h)}`;
const portOf = (h: Host) => basePort + hosts.indexOf(h);
const trail: TrailStore = fileTrail({ dir: join(work, "trails") });

say(c.bold("atomkit demo — the release of DESIGN.md"));
say(
  c.dim(
    `  hosts: ${hosts.map((h) => h.name).join(", ")}   app port: ${hosts.map(portOf).join(", ")}   work dir: ${work}`,
  ),
);
say(c.dim("  pre: drain → steps: upload, unpack, stop, link, start (health GET /health) → post: undrain"));

const tarballs = {
  v1: await buildRelease(join(work, "dist"), "v1"),
  v2: await buildRelease(join(work, "dist"), "v2"),
  v3: await buildRelease(join(work, "dist"), "v3", { broken: true }),
};

let exitCode = 0;
try {
  const setup = await runFleet((h) => setupAtom(baseOf(h)), hosts, { trail });
  if (setup.status !== "committed")
    throw setup.hosts.find((h) => h.result?.error)?.result?.error ?? new Error("setup failed");
  const plan: Array<{ version: "v1" | "v2" | "v3"; note: string; expect: string; failAt?: string }> = [
    { version: "v1", note: "first release", expect: "committed" },
    {
      version: "v2",
      note: values["fail-at"] ? `with a failure injected at "${values["fail-at"]}"` : "upgrade",
      expect: values["fail-at"] ? "rolled-back" : "committed",
      ...(values["fail-at"] ? { failAt: values["fail-at"] } : {}),
    },
    { version: "v3", note: "broken on purpose: GET /health answers 500", expect: "rolled-back" },
  ];
  // what each deploy did, for the closing line: "v1 → v2 → broken v3 rolled back to v2"
  const story: string[] = [];
  let serving = "nothing";
  for (const [i, d] of plan.entries()) {
    say();
    say(c.bold(`${"①②③"[i]} deploy ${d.version} — ${d.note}`));
    const watchers = hosts.map((h) => watchHttp(h, portOf(h)));
    const renderer = createRenderer(mode);
    const fleet = await runFleet(
      (h) =>
        releaseAtom({
          base: baseOf(h),
          version: d.version,
          tarball: tarballs[d.version],
          port: portOf(h),
          // v3 is broken on purpose: no need to wait long for the health it will never have
          ...(d.version === "v3" ? { healthTimeoutMs: 2_000 } : {}),
          ...(d.failAt ? { failAt: d.failAt } : {}),
        }),
      hosts,
      {
        trail,
        onEvent: (e) => renderer.event(e),
        onFailure: "rollback-host",
        maxFailures: hosts.length,
        // what undo and rollback rebuild the atom from, as the CLI records --vars
        meta: { vars: { version: d.version } },
      },
    );
    renderer.done();
    const seen = await Promise.all(watchers.map((w) => w.stop()));
    for (const [k, h] of hosts.entries()) {
      const r = fleet.hosts[k]!;
      const answer = await probe(h, portOf(h));
      const ok = r.state === d.expect;
      if (!ok) exitCode = 1;
      const verified = r.result?.steps.filter((s) => s.status === "undone").every((s) => s.verified) ?? false;
      say(
        `  ${ok ? c.green("✓") : c.red("✗")} ${h.name}: ${r.state}${r.state === "rolled-back" && verified ? c.green(" (every undo verified)") : ""}` +
          ` — GET / now answers ${c.bold(JSON.stringify(answer))}` +
          c.dim(
            `; during the deploy ${seen[k]!.ok}/${seen[k]!.total} probes answered, longest gap ${seen[k]!.maxGapMs} ms`,
          ),
      );
      const error = r.result?.error ?? r.error;
      if (!ok && error) say(c.red(error.message));
    }
    const label =
      d.version === "v3" ? "broken v3" : d.failAt ? `${d.version} (failing at ${d.failAt})` : d.version;
    if (fleet.status === "committed") {
      serving = d.version;
      story.push(d.version);
    } else story.push(`${label} rolled back to ${serving}`);
  }
  // ④ across runs: the previous release serves again, every undo verified (what `atomkit rollback` does)
  if (story.filter((s) => !s.includes("rolled back")).length >= 2) {
    say();
    say(c.bold("④ rollback — the release before serves again"));
    const renderer = createRenderer(mode);
    const back = await rollback(
      trail,
      hosts.map((h) => h.name),
      {
        host: (name) => hosts.find((h) => h.name === name)!,
        atomName: "release",
        atom: (view) => {
          const h = hosts.find((x) => x.name === view.run.host)!;
          const version = (view.run.meta as { vars: { version: "v1" | "v2" | "v3" } }).vars.version;
          return releaseAtom({ base: baseOf(h), version, tarball: tarballs[version], port: portOf(h) });
        },
        onEvent: (e) => renderer.event(e),
      },
    );
    renderer.done();
    for (const [k, h] of hosts.entries()) {
      const r = back.hosts[k]!;
      const ok = r.state === "rolled-back";
      if (!ok) exitCode = 1;
      say(
        `  ${ok ? c.green("✓") : c.red("✗")} ${h.name}: ${r.state}${ok ? c.green(" (every undo verified)") : ""} — GET / now answers ${c.bold(JSON.stringify(await probe(h, portOf(h))))}`,
      );
      const error = r.undo?.error ?? r.error;
      if (!ok && error) say(c.red(error.message));
    }
    story.push(`rollback to v1`);
  }
  say();
  say(
    exitCode === 0
      ? c.green(c.bold(`demo finished: ${story.join(" → ")}, verified`))
      : c.red(`demo finished with unexpected outcomes: ${story.join(" → ")}`),
  );
  say(
    c.dim(
      values.keep
        ? `  trail: npx atomkit trail --trail ${join(work, "trails")}\n  report: npx atomkit report --last --trail ${join(work, "trails")}`
        : "  (--keep leaves the app running and keeps its directory and trail)",
    ),
  );
} finally {
  if (!values.keep) {
    for (const h of hosts) await stopApp(h, `${baseOf(h)}/app.pid`).catch(() => {});
    for (const h of hosts)
      if (!h.local) await h.rm(baseOf(h), { recursive: true, force: true }).catch(() => {});
    await Promise.all(hosts.map((h) => h.close()));
    await rm(work, { recursive: true, force: true });
  } else {
    await Promise.all(hosts.map((h) => h.close()));
    say(c.dim(`  kept: ${work}`));
  }
}
process.exit(exitCode);

function basename(p: string) {
  return p.split("/").pop() ?? p;
}

/** `user@host:port` → an sshHost; key and known_hosts from flags or the testbed's environment. */
function sshTarget(target: string, index: number): Host {
  const m = /^(?:([^@]+)@)?([^:]+)(?::(\d+))?$/.exec(target);
  if (!m) {
    console.error(`--hosts: cannot read "${target}"; expected user@host:port`);
    process.exit(2);
  }
  const env = process.env;
  const keyFile = values.key ?? env.ATOMKIT_SSH_KEY;
  return sshHost({
    host: m[2]!,
    port: Number(m[3] ?? 22),
    ...(m[1] ? { username: m[1] } : {}),
    ...(keyFile ? { privateKey: readFileSync(keyFile) } : { agent: true as const }),
    ...((values["known-hosts"] ?? env.ATOMKIT_SSH_KNOWN_HOSTS)
      ? { knownHosts: values["known-hosts"] ?? env.ATOMKIT_SSH_KNOWN_HOSTS }
      : {}),
    name: `${m[1] ? `${m[1]}@` : ""}${m[2]}:${m[3] ?? 22}#${index}`,
    // loopback test hosts share one filesystem: each gets its own state (locks) like a real machine
    stateDir: `/tmp/atomkit-demo-state-${basename(work)}-${index}`,
  });
}
