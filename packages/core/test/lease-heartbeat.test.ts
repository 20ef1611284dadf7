import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { waitUntil } from "../../testkit/src/patience";
import { type Host, localHost } from "../src/index";
import { acquireLease, readLease } from "../src/kit";
import { leasePath } from "../src/lease";
import { tempDir } from "./_helpers";

// A heartbeat used to read the lease, check its token, then rewrite it: a lease broken between the
// read and the write came back, so the new holder's lease could be overwritten and two runs both held
// the lock. Heartbeats now go to a beat file of the holder's own; the lease is never rewritten.

let dir: { dir: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  dir = await tempDir("atomkit-beat-");
});
afterEach(() => dir.cleanup());

describe("lease heartbeats", () => {
  it("a lease broken between the heartbeat's read and write is not put back; the holder learns it lost the lock", async () => {
    const base = localHost({ stateDir: join(dir.dir, "state") });
    const path = leasePath(base, "deploy");
    let breakNext = true;
    // the breaker strikes right after the heartbeat read the lease (once)
    const host: Host = {
      ...base,
      readFile: async (p) => {
        const data = await base.readFile(p);
        if (p === path && breakNext && heartbeats > 0) {
          breakNext = false;
          await rm(path, { force: true });
        }
        return data;
      },
    };
    let heartbeats = 0;
    // a ttl a loaded machine can keep (a beat every third of it): a late beat must not make it stale
    const lease = await acquireLease(host, "deploy", { owner: "test", ttlMs: 1_500 });
    heartbeats = 1;
    await waitUntil(async () => lease.signal.aborted, "the holder to notice it lost the lock");
    // whatever the heartbeat did in between, the broken lease never came back
    expect(existsSync(path)).toBe(false);
    await lease.release();
  });

  it("a live holder's heartbeats keep it fresh (its beat file), and release removes both files", async () => {
    const host = localHost({ stateDir: join(dir.dir, "state") });
    // a ttl a loaded machine can keep (a beat every third of it): a late beat must not make it stale
    const lease = await acquireLease(host, "deploy", { owner: "test", ttlMs: 1_500 });
    const first = (await readLease(host, "deploy"))!.heartbeatAt;
    await waitUntil(async () => (await readLease(host, "deploy"))!.heartbeatAt > first, "a heartbeat");
    // well past the ttl of the lease file's own time: still fresh, from the beat file
    await waitUntil(async () => Date.now() - Date.parse(first) > 3_000, "the first heartbeat to age");
    expect((await readLease(host, "deploy"))?.stale).toBe(false);
    await lease.release();
    expect(await host.readdir(join(dir.dir, "state", "locks"))).toEqual([]);
  });
});
