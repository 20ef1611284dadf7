import { createWriteStream } from "node:fs";
import { copyFile, mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { gzipSync } from "node:zlib";
import { atom, localHost, memoryTrail, run, type StepContext, undoRun, validateParams } from "@atomkit/core";
import { describeStepContract, stepContext } from "@atomkit/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readImageTar } from "../src/_tar";
import { ensureImage, steps } from "../src/index";
import { conn, docker, noDocker, V1, V2 } from "./_fixtures";

const REPO = `atomkit-test/step-docker-image-${process.pid}`;
let dir = "";
let seq = 0;
const host = () => localHost({ stateDir: join(dir, "state") });

/** `docker save` of V1 under a fresh tag, which is then removed: the tag is absent until loaded. */
async function archiveOf(image: string, ref: string, file: string): Promise<string> {
  const [repo, tag] = ref.split(":") as [string, string];
  await docker.getImage(image).tag({ repo, tag });
  await pipeline(await docker.getImage(ref).get(), createWriteStream(file));
  await docker.getImage(ref).remove();
  return (await docker.getImage(image).inspect()).Id;
}

let unique: { ref: string; file: string; layerOffset: number };

/**
 * An image with a layer of its own (V1 plus one random file), saved and then deleted from the daemon,
 * so loading it really writes a layer; and where that layer's data starts in the archive.
 */
async function uniqueImage(file: string) {
  const ref = `${REPO}:unique`;
  const [repo, tag] = ref.split(":") as [string, string];
  const c = await docker.createContainer({ Image: V1, Cmd: ["sh", "-c", `echo ${Math.random()} > /unique`] });
  await c.start();
  await c.wait();
  await c.commit({ repo, tag });
  await c.remove();
  await pipeline(await docker.getImage(ref).get(), createWriteStream(file));
  const info = await docker.getImage(ref).inspect();
  await docker.getImage(ref).remove();
  const [entry] = JSON.parse((await readEntry(file, "manifest.json")).toString()) as Array<{
    Layers: string[];
  }>;
  const layer = entry!.Layers.at(-1)!;
  expect(info.RootFS.Layers?.length).toBe(entry!.Layers.length);
  return { ref, file, layerOffset: (await entryOffset(file, layer)) + 1024 };
}

/** Offset of an entry's data in a plain tar archive. */
async function entryOffset(file: string, name: string): Promise<number> {
  const buf = await readFile(file);
  for (let off = 0; off + 512 <= buf.length; ) {
    const h = buf.subarray(off, off + 512);
    const entry = h.subarray(0, 100).toString("utf8").replace(/\0.*$/s, "");
    if (!entry) break;
    const size = parseInt(h.subarray(124, 136).toString("latin1").replace(/\0.*$/s, "").trim() || "0", 8);
    if (entry === name) return off + 512;
    off += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error(`${name} not in ${file}`);
}

async function readEntry(file: string, name: string): Promise<Buffer> {
  const buf = await readFile(file);
  const off = await entryOffset(file, name);
  const size = parseInt(
    buf
      .subarray(off - 512 + 124, off - 512 + 136)
      .toString("latin1")
      .replace(/\0.*$/s, "")
      .trim(),
    8,
  );
  return buf.subarray(off, off + size);
}

async function tags(): Promise<Array<[string, string]>> {
  const list = await docker.listImages({ filters: { reference: [REPO] } });
  return list.flatMap((i) => (i.RepoTags ?? []).map((t) => [t, i.Id] as [string, string])).sort();
}

async function idOf(ref: string): Promise<string | null> {
  try {
    return (await docker.getImage(ref).inspect()).Id;
  } catch {
    return null;
  }
}

describe.skipIf(noDocker)("docker.image against a real dockerd", () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "atk-image-"));
    unique = await uniqueImage(join(dir, "unique.tar"));
  });
  afterAll(async () => {
    for (const [t] of await tags())
      await docker
        .getImage(t)
        .remove({ force: true })
        .catch(() => {});
    await rm(dir, { recursive: true, force: true, maxRetries: 10 });
  });

  describeStepContract({
    name: "docker.image load (contract)",
    idempotent: true,
    // a damaged layer makes the daemon refuse the load part-way; no tag may have moved
    breakApplyLeaves: "unchanged",
    async setup() {
      const file = join(dir, `c${++seq}.tar`);
      await copyFile(unique.file, file);
      return {
        host: host(),
        step: () => ensureImage({ docker: conn, image: unique.ref, load: file }),
        snapshot: tags,
        breakApply: async () => {
          // damage the one layer the daemon does not have yet (shared ones are never re-read)
          const fh = await open(file, "r+");
          await fh.write(Buffer.alloc(512, 0x5a), 0, 512, unique.layerOffset);
          await fh.close();
        },
      };
    },
  });

  it("reads the tags of a docker save archive, plain and gzip", async () => {
    const ref = `${REPO}:t${++seq}`;
    const file = join(dir, "t.tar");
    const id = await archiveOf(V2, ref, file);
    expect(await readImageTar(file)).toEqual([{ ref, id }]);
    await writeFile(`${file}.gz`, gzipSync(await readFile(file)));
    expect(await readImageTar(`${file}.gz`)).toEqual([{ ref, id }]);
    const r = await run(
      atom("x", { steps: [ensureImage({ docker: conn, image: ref, load: `${file}.gz` })] }),
      {
        host: host(),
        lock: false,
      },
    );
    expect(r.status, r.error?.message).toBe("committed");
    expect(await idOf(ref)).toBe(id);
  });

  it("a tag that pointed elsewhere is moved back by undo, not deleted", async () => {
    const ref = `${REPO}:m${++seq}`;
    const file = join(dir, "m.tar");
    const v1 = await archiveOf(V1, ref, file);
    const [repo, tag] = ref.split(":") as [string, string];
    await docker.getImage(V2).tag({ repo, tag });
    const v2 = await idOf(V2);
    const failAfter = ensureImage(
      { docker: conn, image: `${REPO}:never-there`, load: file },
      { name: "fails" },
    );
    const r = await run(
      atom("x", { steps: [ensureImage({ docker: conn, image: ref, load: file }), failAfter] }),
      {
        host: host(),
        lock: false,
        backoffMs: 1,
      },
    );
    expect(r.status, r.error?.message).toBe("rolled-back");
    expect(r.steps[0]).toMatchObject({ status: "undone", verified: true });
    expect(r.steps[0]?.after).toEqual({ images: [{ ref, id: v1 }] });
    expect(r.error?.message).toContain("does not hold image");
    expect(await idOf(ref)).toBe(v2);
    expect(await idOf(V1)).toBe(v1); // the image itself stays: only the tag moved
  });

  it("undo checks every image it must point a tag back at before moving any tag", async () => {
    // an archive with two tags of V1: `aa` (absent before the load) and `zz` (on an image of its own)
    const [aa, zz] = [`${REPO}:aa${++seq}`, `${REPO}:zz${seq}`];
    const file = join(dir, "two.tar");
    for (const ref of [aa, zz]) {
      const [repo, tag] = ref.split(":") as [string, string];
      await docker.getImage(V1).tag({ repo, tag });
    }
    // docker save of two tags (dockerode's getImages, missing from its types)
    const save = docker as unknown as { getImages(o: { names: string[] }): Promise<NodeJS.ReadableStream> };
    await pipeline(await save.getImages({ names: [aa, zz] }), createWriteStream(file));
    for (const ref of [aa, zz]) await docker.getImage(ref).remove();
    const c = await docker.createContainer({ Image: V1, Cmd: ["sh", "-c", `echo ${Math.random()} > /own`] });
    await c.start();
    await c.wait();
    const [repo, tag] = zz.split(":") as [string, string];
    const own = (await c.commit({ repo, tag })) as { Id: string };
    await c.remove();

    const trail = memoryTrail();
    const r = await run(atom("x", { steps: [ensureImage({ docker: conn, image: zz, load: file })] }), {
      host: host(),
      trail,
      lock: false,
    });
    expect(r.status, r.error?.message).toBe("committed");
    expect([await idOf(aa), await idOf(zz)]).toEqual([await idOf(V1), await idOf(V1)]);
    await docker.getImage(own.Id).remove(); // the image zz pointed at is pruned
    const u = await undoRun(trail, r.runId, { host: host(), steps: [...steps], lock: false, backoffMs: 1 });
    expect(u.status).toBe("rollback-failed");
    expect(u.error?.message).toContain("that image is gone");
    expect(u.error?.message).toContain("no tag was moved");
    expect(await idOf(aa)).toBe(await idOf(V1)); // not removed although it sorts first
  });

  it("undo refuses a recorded state naming tags the step does not move (a forged trail untags nothing)", async () => {
    const step = ensureImage({ docker: conn, image: V2 });
    const v = (await validateParams(step)) as { value: unknown };
    const ctx: StepContext = stepContext({ host: host(), runId: "forged", step: "docker.image" });
    const forged = {
      images: [
        { ref: V1, id: null },
        { ref: V2, id: await idOf(V2) },
      ],
    };
    const error = await step.definition.undo(ctx, v.value as never, forged, forged).catch((e) => e);
    expect(error?.message).toContain("tags this step does not move");
    expect(await idOf(V1)).not.toBeNull();
  });

  it("refuses before changing anything: no source for a missing image, a damaged archive, a pull it cannot make", async () => {
    const before = await tags();
    const ref = `${REPO}:absent`;
    const junk = join(dir, "junk.tar");
    await writeFile(junk, "this is not a tar archive".repeat(100));
    const cases = [
      [ensureImage({ docker: conn, image: ref }), "give `load`"],
      [ensureImage({ docker: conn, image: ref, load: junk }), "not an archive made by `docker save`"],
      [
        ensureImage({ docker: conn, image: ref, load: join(dir, "missing.tar") }),
        "cannot read image archive",
      ],
      // a registry on a closed loopback port: the daemon never leaves 127.0.0.1
      [
        ensureImage({ docker: conn, image: "127.0.0.1:9/atomkit/none:1", pull: true }),
        "pull 127.0.0.1:9/atomkit/none:1",
      ],
    ] as const;
    for (const [step, text] of cases) {
      const r = await run(atom("x", { steps: [step] }), { host: host(), lock: false });
      expect(r.steps[0]?.status, text).toBe("failed-unchanged");
      expect(r.error?.message).toContain(text);
    }
    expect(await tags()).toEqual(before);
  });
});
