// A real fleet trail of many hosts, for the report's size test and its render benchmark: `runFleet`
// over local hosts (one directory each, standing in for machines), seven real file steps per host, in
// canary batches; one host fails its health step, so rollback-all undoes every committed host.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { atom, defineStep, fileTrail, isNotFound, localHost, memoryTrail, runFleet } from "@atomkit/core";

const STEPS = ["drain", "upload", "unpack", "stop", "link", "start", "health"];

const put = defineStep({
  kind: "bench.put",
  params: (p) => p,
  describe: (p) => `write ${p.file}`,
  observe: async (_ctx, p) => {
    try {
      return { content: await readFile(p.file, "utf8"), version: p.version };
    } catch (e) {
      if (isNotFound(e)) return { content: null, version: p.version };
      throw e;
    }
  },
  apply: async (_ctx, p) => {
    await writeFile(p.file, `${p.version}\n`);
    if (p.fail)
      throw new Error(`health check failed: GET http://127.0.0.1:8080/health answered 503 on ${p.host}`);
  },
  undo: async (_ctx, p, before) => {
    if (before.content === null) await rm(p.file, { force: true });
    else await writeFile(p.file, before.content);
  },
  // the version param is part of the state only as the label of what was asked: compare files
  same: (a, b) => a.content === b.content,
});

/** Builds the trail in `dir`/trails; returns its directory and the fleet id. */
export async function bigFleetTrail(dir, { hosts = 200, failAt = 150 } = {}) {
  const list = [];
  for (let i = 0; i < hosts; i++) {
    const name = `web-${String(i + 1).padStart(3, "0")}`;
    await mkdir(join(dir, "hosts", name), { recursive: true });
    list.push(localHost({ name, stateDir: join(dir, "state", name) }));
  }
  const atomFor = (version) => (host) =>
    atom("release", {
      steps: STEPS.map((s) =>
        put(
          {
            file: join(dir, "hosts", host.name, s),
            version,
            host: host.name,
            ...(version === "v2" && s === "health" && host.name === list[failAt - 1]?.name
              ? { fail: true }
              : {}),
          },
          { name: s },
        ),
      ),
    });
  // run against the memory trail, then written to a file trail in one append per run: runFleet on a
  // file trail re-reads every earlier run for each host's checks (minutes at 200 hosts, issue 17)
  const trail = memoryTrail();
  const meta = (version) => ({ vars: { version }, hostKey: "web" });
  const v1 = await runFleet(atomFor("v1"), list, { trail, meta: meta("v1"), concurrency: 25 });
  if (v1.status !== "committed") throw new Error(`v1 did not commit: ${v1.status}`);
  const v2 = await runFleet(atomFor("v2"), list, {
    trail,
    meta: meta("v2"),
    batch: [10, "50%", "100%"],
    concurrency: 25,
    onFailure: "rollback-all",
  });
  const file = fileTrail({ dir: join(dir, "trails") });
  for (const [id, records] of trail.records) await file.append(id, records, { sync: false });
  await file.close?.();
  return { trailDir: join(dir, "trails"), fleetId: v2.fleetId, status: v2.status };
}
