import { createHash } from "node:crypto";
import { chmod, lstat, mkdir, readdir, readFile, writeFile as writeLocal } from "node:fs/promises";
import { join } from "node:path";
import { atom, type Host, run } from "@atomkit/core";
import { describeStepContract, hashTree } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type FileState, uploadFile } from "../src/index";
import { asRemote, bound, flaky, HOSTILE_STRINGS, type Sandbox, sandbox, segmentSafe } from "./_helpers";

const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const ARTIFACT = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 31) % 251));

async function uploadFixture(s: Sandbox, existing = true) {
  await mkdir(join(s.app, "shared"), { recursive: true });
  await mkdir(join(s.root, "artifacts"));
  const source = join(s.root, "artifacts", "app 1.2.jar");
  await writeLocal(source, ARTIFACT);
  const path = join(s.app, "shared", "app.jar");
  if (existing) {
    await writeLocal(path, "old jar");
    await chmod(path, 0o600);
  }
  return { source, path };
}

for (const mode of ["local", "remote"] as const) {
  const hostFor = (h: Host) => (mode === "remote" ? asRemote(h) : h);
  for (const existing of [true, false]) {
    describeStepContract({
      name: `fs.upload: ${existing ? "replace a file" : "new file"} (${mode})`,
      idempotent: true,
      async setup() {
        const s = await sandbox();
        const { source, path } = await uploadFixture(s, existing);
        // the rename into place lands, then the connection drops (replacing, the first rename is the backup's)
        const f = flaky(hostFor(s.host), "rename", "after", existing ? 1 : 0);
        return {
          host: f.host,
          step: () => uploadFile({ source, path, mode: 0o640 }),
          snapshot: () => hashTree(s.app),
          breakApply: f.arm,
          cleanup: s.cleanup,
        };
      },
    });
  }
}

describe("fs.upload: checksums and ugly paths", () => {
  let s: Sandbox;
  beforeEach(async () => {
    s = await sandbox();
  });
  afterEach(() => s.cleanup());

  it("refuses a file whose sha256 is not the expected one, replacing nothing", async () => {
    const { source, path } = await uploadFixture(s);
    const picture = await hashTree(s.app);
    for (const host of [s.host, asRemote(s.host)]) {
      const r = await run(
        atom("wrong", { steps: [uploadFile({ source, path, sha256: sha("something else") })] }),
        {
          host,
          lock: false,
        },
      );
      expect(r.steps[0]?.status).toBe("failed-unchanged");
      expect(r.error?.message).toContain("is not the expected file");
      expect(r.error?.expected).toBe(`sha256 ${sha("something else")}`);
      expect(r.error?.found).toBe(`sha256 ${sha(ARTIFACT)}`);
      expect(await hashTree(s.app)).toBe(picture);
    }
  });

  it("with a matching sha256 it uploads once, then leaves the host alone", async () => {
    const { source, path } = await uploadFixture(s);
    const counted = { uploads: 0 };
    const host: Host = {
      ...s.host,
      upload: (...a) => {
        counted.uploads++;
        return s.host.upload(...a);
      },
    };
    const step = () => uploadFile({ source, path, sha256: sha(ARTIFACT).toUpperCase(), mode: "0644" });
    const first = await run(atom("a", { steps: [step()] }), { host, lock: false });
    expect(first.status).toBe("committed");
    expect(first.steps[0]?.after).toEqual({ type: "file", sha256: sha(ARTIFACT), mode: 0o644 });
    const second = await run(atom("b", { steps: [step()] }), { host, lock: false });
    expect(second.steps[0]?.changed).toBe(false);
    expect(counted.uploads).toBe(1);
  });

  it("uploads to hostile names literally and leaves no temporary file behind", async () => {
    await mkdir(s.app, { recursive: true });
    const source = join(s.root, "src $(x) 'q'\nnl");
    await writeLocal(source, "payload");
    for (const name of HOSTILE_STRINGS.filter(segmentSafe)) {
      const st = await bound<FileState>(uploadFile, asRemote(s.host), {
        source,
        path: join(s.app, `f ${name}`),
      });
      await st.apply(await st.observe());
      expect(await readFile(join(s.app, `f ${name}`), "utf8")).toBe("payload");
    }
    expect((await readdir(s.app)).filter((n) => n.includes(".atomkit-"))).toEqual([]);
    expect((await lstat(join(s.app, "f plain"))).mode & 0o777).toBe(0o644);
  });

  it("refuses bad params before anything runs", async () => {
    const { source } = await uploadFixture(s);
    const cases: Array<[unknown, string]> = [
      [{ source: join(s.root, "nope"), path: "/x" }, "source"],
      [{ source, path: "x" }, "path"],
      [{ source, path: "/x", sha256: "abc" }, "sha256"],
      [{ source, path: "/x", mode: -1 }, "mode"],
    ];
    for (const [params, field] of cases) {
      await expect(
        run(atom("bad", { steps: [uploadFile(params as never)] }), { host: s.host, lock: false }),
      ).rejects.toMatchObject({
        issues: [{ path: field }],
      });
    }
  });
});
