import { AtomError, defineStep, HostError } from "@atomkit/core";
import {
  absolutePath,
  arrayOf,
  boolean,
  checkFields,
  nonEmptyString,
  nullable,
  optional,
  ParamsFieldError,
} from "@atomkit/core/kit";
import {
  CONNECTION_SECRETS,
  type DockerClient,
  type DockerConnection,
  dockerClient,
  parseConnection,
} from "./_connection";
import { call, dockerStatus } from "./_docker";
import { parseImage } from "./_spec";
import { normalizeRef, readImageTar, type TarImage } from "./_tar";

/** The options of `docker.image`. */
export interface EnsureImageOptions {
  docker?: DockerConnection;
  /** The image that must be on the daemon, e.g. `registry.local/app:2` (no tag means `:latest`). */
  image: string;
  /**
   * A `docker save` archive (plain or gzip) on the machine running Atomkit, streamed to the daemon
   * (over SSH for a remote one). Loaded unless every tag in it already points at its image.
   */
  load?: string;
  /** Pull from the registry when the image is missing (the daemon must reach the registry). */
  pull?: boolean;
}

/** `docker.image`'s options validated, the connection filled in. */
export interface EnsureImageParams extends EnsureImageOptions {
  docker: DockerConnection;
}

/** The state of `docker.image`: which image id each tag it manages points at (null: none). */
export interface EnsureImageState {
  /**
   * Every tag this step may move: `image`, and each tag in the `load` archive, sorted; `id` the image
   * it names (`sha256:…`), null: no such tag. All of it is compared: there is no evidence here.
   */
  images: Array<{ ref: string; id: string | null }>;
}

/**
 * `docker.image`: makes sure an image is on the daemon, loading it from an archive or pulling it. Undo
 * moves back only the tags this step added or moved.
 */
export const ensureImage = defineStep({
  kind: "docker.image",
  package: "@atomkit/step-docker",
  params: (input: EnsureImageOptions): EnsureImageParams => {
    const o = checkFields(input, {
      docker: (v, p) => parseConnection(v, p),
      image: (v, p) => normalizeRef(parseImage(v, p)),
      load: optional(absolutePath),
      pull: optional(boolean),
    });
    if (o.load !== undefined && o.pull)
      throw new ParamsFieldError("pull", "expected either load or pull, found both: give one");
    if (o.load !== undefined && o.image.includes("@"))
      throw new ParamsFieldError(
        "image",
        "expected a tag (an archive carries tags, not digests), found a digest",
      );
    return {
      docker: o.docker,
      image: o.image,
      ...(o.load !== undefined ? { load: o.load } : {}),
      ...(o.pull ? { pull: o.pull } : {}),
    };
  },
  secret: CONNECTION_SECRETS,
  describe: (p) => `image ${p.image}${p.load ? ` from ${p.load}` : p.pull ? " (pull)" : ""}`,
  state: checkImageState,

  async observe(ctx, p): Promise<EnsureImageState> {
    const c = dockerClient(ctx.host, p.docker);
    const refs = new Set([p.image]);
    if (p.load) for (const t of await archive(p)) refs.add(t.ref);
    const images: EnsureImageState["images"] = [];
    for (const ref of [...refs].sort()) images.push({ ref, id: await imageId(c, ref, ctx.signal) });
    return { images };
  },

  async apply(ctx, p, before) {
    const c = dockerClient(ctx.host, p.docker);
    const have = before.images.find((i) => i.ref === p.image)?.id ?? null;
    if (p.load) {
      const tags = await archive(p);
      const wanted = tags.find((t) => t.ref === p.image);
      if (!wanted) {
        throw new AtomError("ATOM_STEP_FAILED", `${p.load} does not hold image ${p.image}`, {
          expected: p.image,
          found: tags.length ? tags.map((t) => t.ref).join(", ") : "no tagged image",
          hint: `save it with: docker save -o ${p.load} ${p.image}`,
        });
      }
      const current = new Map(before.images.map((i) => [i.ref, i.id]));
      if (tags.every((t) => current.get(t.ref) === t.id)) return;
      ctx.log(`loading ${p.load} into ${c.name}`);
      await load(c, p.load, ctx.signal);
      const now = await imageId(c, p.image, ctx.signal);
      if (now !== wanted.id) {
        throw new AtomError("ATOM_STEP_FAILED", `after loading ${p.load}, ${p.image} is not its image`, {
          expected: wanted.id,
          found: now ?? "no such image",
          hint: "the archive may be damaged; save it again",
        });
      }
      return;
    }
    if (have) return;
    if (!p.pull) {
      throw new AtomError("ATOM_STEP_FAILED", `image ${p.image} is not on ${c.name}`, {
        expected: `image ${p.image} present`,
        found: "no such image",
        hint: "give `load` (a docker save archive) or `pull: true`",
      });
    }
    ctx.log(`pulling ${p.image}`);
    await pull(c, p.image, ctx.signal);
  },

  // cannot restore: an image that an earlier tag pointed at and that was deleted since (pruned) —
  // the tag can then not be moved back; layers shared with other images are never touched
  async undo(ctx, p, before) {
    const c = dockerClient(ctx.host, p.docker);
    refuseForeignRefs(p, before);
    // every image a tag must point back at is checked first: a missing one fails before any tag moves
    const moves: Array<{ ref: string; id: string | null }> = [];
    for (const b of before.images) {
      if ((await imageId(c, b.ref, ctx.signal)) !== b.id) moves.push(b);
    }
    for (const b of moves) {
      if (b.id !== null && !(await imageId(c, b.id, ctx.signal))) {
        throw new AtomError(
          "ATOM_STEP_FAILED",
          `cannot point ${b.ref} back at ${b.id.slice(0, 19)}: that image is gone`,
          {
            expected: `image ${b.id}`,
            found: "no such image (pruned since the load?); no tag was moved",
            hint: `load or pull the previous ${b.ref} again`,
          },
        );
      }
    }
    for (const b of moves) {
      if (b.id === null) {
        await untag(c, b.ref, ctx.signal);
        ctx.log(`removed ${b.ref}, which this step added`);
        continue;
      }
      const [repo, tag] = splitRef(b.ref);
      await call(
        c,
        `tag ${b.id.slice(0, 19)} as ${b.ref}`,
        () => c.docker.getImage(b.id!).tag({ repo, tag }),
        ctx.signal,
      );
      ctx.log(`${b.ref} points at ${b.id.slice(0, 19)} again`);
    }
  },
});

/** The exact shape of a docker.image state read back from a trail. */
function checkImageState(value: unknown): EnsureImageState {
  const entry = (v: unknown, p: string) =>
    checkFields(
      v,
      {
        ref: parseImage,
        id: nullable((v, p) =>
          nonEmptyString(v, p, { pattern: /^sha256:[0-9a-f]{64}$/, hint: "sha256:<64 hex>" }),
        ),
      },
      p,
    );
  return checkFields(value, { images: arrayOf(entry) }) as EnsureImageState;
}

/**
 * Undo moves the tags recorded in `before`: they must include the step's `image`, and any other one
 * needs an archive (whose tags the step also moves). A trail that names others is not this step's.
 */
function refuseForeignRefs(p: EnsureImageParams, before: EnsureImageState): void {
  const refs = before.images.map((i) => i.ref);
  const foreign = p.load ? [] : refs.filter((r) => r !== p.image);
  if (!refs.includes(p.image) || foreign.length) {
    throw new AtomError("ATOM_STEP_FAILED", `the recorded state names tags this step does not move`, {
      expected: p.load ? `${p.image} and the tags of ${p.load}` : p.image,
      found: refs.join(", ") || "no tag",
      hint: "the trail does not match this step's params; inspect the trail, nothing was changed",
    });
  }
}

async function archive(p: EnsureImageParams): Promise<TarImage[]> {
  try {
    return await readImageTar(p.load!);
  } catch (error) {
    throw new HostError(
      (error as { code?: string }).code === "ENOENT" ? "ENOENT" : "OTHER",
      `cannot read image archive ${p.load}: ${(error as Error).message}`,
      {
        cause: error,
        hint: "give the path of a `docker save` archive on the machine running Atomkit",
      },
    );
  }
}

async function imageId(c: DockerClient, ref: string, signal: AbortSignal): Promise<string | null> {
  try {
    const info = await call(c, `inspect image ${ref}`, () => c.docker.getImage(ref).inspect(), signal);
    return info.Id;
  } catch (error) {
    if (dockerStatus(error) === 404) return null;
    throw error;
  }
}

async function load(c: DockerClient, path: string, signal: AbortSignal): Promise<void> {
  // not retried: a load cut short by a restarting daemon is reported, and check decides what changed
  const stream = await c.docker.loadImage(path, { abortSignal: signal } as object).catch((error: unknown) => {
    throw new HostError("OTHER", `load ${path} into ${c.name} failed: ${(error as Error).message}`, {
      host: c.name,
      cause: error,
    });
  });
  const text = await new Promise<string>((resolve, reject) => {
    let out = "";
    stream.on("data", (d: Buffer) => {
      out += d.toString("utf8");
    });
    stream.once("end", () => resolve(out));
    stream.once("error", reject);
  });
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    let msg: { error?: string; errorDetail?: { message?: string } };
    try {
      msg = JSON.parse(line);
    } catch {
      continue;
    }
    if (msg.error || msg.errorDetail) {
      throw new HostError(
        "OTHER",
        `load ${path} into ${c.name} failed: ${msg.errorDetail?.message ?? msg.error}`,
        {
          host: c.name,
          hint: "the archive may be damaged or not made by `docker save`",
        },
      );
    }
  }
}

async function pull(c: DockerClient, ref: string, signal: AbortSignal): Promise<void> {
  const stream = await call(c, `pull ${ref}`, (s) => c.docker.pull(ref, { abortSignal: s }), signal, {
    retryServerErrors: false, // a registry that cannot be reached answers 500 too
  });
  await new Promise<void>((resolve, reject) => {
    c.docker.modem.followProgress(stream, (error: Error | null, output: Array<{ error?: string }>) => {
      const failed = error?.message ?? output?.find((o) => o.error)?.error;
      if (failed) {
        reject(
          new HostError("OTHER", `pull ${ref} on ${c.name} failed: ${failed}`, {
            host: c.name,
            hint: "check that the daemon reaches the registry and is logged in to it",
          }),
        );
      } else resolve();
    });
  });
}

async function untag(c: DockerClient, ref: string, signal: AbortSignal): Promise<void> {
  const rm = (force: boolean) =>
    call(c, `remove image ${ref}`, () => c.docker.getImage(ref).remove({ force }), signal);
  try {
    await rm(false);
  } catch (error) {
    const s = dockerStatus(error);
    if (s === 404) return;
    // in use by a container: forced removal of a tag only untags; the image stays for the container
    if (s === 409) await rm(true);
    else throw error;
  }
}

function splitRef(ref: string): [string, string] {
  const i = ref.lastIndexOf(":");
  if (i > ref.lastIndexOf("/")) return [ref.slice(0, i), ref.slice(i + 1)];
  return [ref, "latest"];
}
