import { posix } from "node:path";
import { defineStep, type Host, type StepContext, type StepPhase } from "@atomkit/core";
import { absolutePath, checkFields, ParamsFieldError, show, stepError, tempPrefix } from "@atomkit/core/kit";

export interface KvSetOptions {
  /** Absolute path of the JSON file on the host, e.g. `/srv/app/flags.json`. Created if missing. */
  file: string;
  /** The key to set: a letter or `_` first, then letters, digits, `_`, `.`, `-` (at most 128). */
  key: string;
  /** The value, a string. */
  value: string;
}

export type KvSetParams = KvSetOptions;

/**
 * What the user cares about: the key's value, `null` when the key is absent (a missing file and `{}`
 * both hold no keys). Other keys, the file's inode, mode and formatting are not part of it.
 *
 * State shape version 2 (0.2.0 on). Version 1 (0.1.x) recorded the bare value (`"on"` or `null`); a
 * trail written by 0.1.x still undoes, because `state`, `same` and `undo` read both shapes (`recordedValue`).
 */
export interface KvState {
  value: string | null;
}

/** Any state shape this package ever recorded: v2 `{ value }`, v1 the bare value. */
export type RecordedKvState = KvState | string | null;

const KIND = "kv.set";
const KEY_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
/** A key-value file is small: refuse a value that would make every read and rewrite slow. */
const MAX_VALUE_BYTES = 64 * 1024;
/** A file we create holds configuration someone else reads: not world-readable by default. */
const NEW_FILE_MODE = 0o600;

/**
 * `kv.set`: sets `key` to `value` in a JSON object file on the host. The file is rewritten whole to a
 * temporary name beside it and renamed over it (`host.writeFile`), so a reader sees the old or the new
 * content, never a mix. Other keys are kept as they were. Undo puts the key's old value back, or removes
 * the key (and the file, when no key is left).
 */
export const setKey = defineStep({
  kind: KIND,
  package: "atomkit-step-kv",
  // core's checkFields reports every invalid field (and a mistyped key, with the key meant) at once
  params: (input: KvSetOptions): KvSetParams =>
    checkFields(input, {
      file: absolutePath,
      key: (v, path) => {
        if (typeof v === "string" && KEY_RE.test(v)) return v;
        throw new ParamsFieldError(
          path,
          `expected a key like "feature.checkout" (${KEY_RE}), found ${show(v)}`,
        );
      },
      value: (v, path) => {
        if (typeof v !== "string") throw new ParamsFieldError(path, `expected a string, found ${show(v)}`);
        if (Buffer.byteLength(v) > MAX_VALUE_BYTES) {
          throw new ParamsFieldError(path, `expected at most ${MAX_VALUE_BYTES} bytes, found ${v.length}`);
        }
        return v;
      },
    }),
  describe: (p) =>
    `kv ${p.file}: ${p.key} = ${show(p.value.length > 40 ? `${p.value.slice(0, 40)}…` : p.value)}`,
  observe: async (ctx, p): Promise<KvState> => {
    const store = await readStore(ctx, KIND, "observe", p);
    return { value: valueIn(ctx, "observe", p, store.data) };
  },
  // values compare by meaning, whichever shape (version) recorded them: a v1 trail's `"on"` and a v2
  // observation `{ value: "on" }` are the same state, so undo of an old run finds no drift
  same: (a, b) => recordedValue(a) === recordedValue(b),
  state: checkState,
  owns: (p) => [p.file],
  plan: async (_ctx, p): Promise<KvState> => ({ value: p.value }),
  async apply(ctx, p) {
    const store = await readStore(ctx, KIND, "apply", p);
    if (valueIn(ctx, "apply", p, store.data) === p.value) return;
    if (store.mode === null) await refuseMissingDir(ctx, p.file);
    store.data[p.key] = p.value;
    await writeStore(ctx.host, p.file, store);
  },
  // Works from the recorded state alone; `before` may be a v1 bare string from an older trail.
  async undo(ctx, p, before) {
    const want = recordedValue(before);
    const store = await readStore(ctx, KIND, "undo", p);
    if (valueIn(ctx, "undo", p, store.data) === want) return;
    if (want === null) delete store.data[p.key];
    else store.data[p.key] = want;
    if (Object.keys(store.data).length === 0) await ctx.host.rm(p.file, { force: true });
    else await writeStore(ctx.host, p.file, store);
  },
  // the temporary file of an interrupted rewrite (host.writeFile names it with tempPrefix)
  async cleanup(ctx, p) {
    const dir = posix.dirname(p.file);
    const prefix = tempPrefix(p.file);
    if ((await ctx.host.lstat(dir))?.type !== "directory") return;
    for (const name of await ctx.host.readdir(dir)) {
      const leftover = posix.join(dir, name);
      if (name.startsWith(prefix) && (await ctx.host.lstat(leftover))?.type === "file") {
        await ctx.host.rm(leftover, { force: true });
      }
    }
  },
});

/** The key's value in any recorded shape (see `KvState`). */
export function recordedValue(state: RecordedKvState): string | null {
  return state !== null && typeof state === "object" ? state.value : state;
}

/**
 * A state read back from a trail: v2 `{ value }` exactly, or a v1 bare value; anything else is refused
 * (a trail is evidence, never a command). Returns it in the current shape.
 */
export function checkState(input: unknown): KvState {
  if (input === null || typeof input === "string") return { value: input }; // v1 (0.1.x)
  if (typeof input !== "object" || Array.isArray(input)) {
    throw new ParamsFieldError("", `expected a kv.set state { value }, found ${show(input)}`);
  }
  for (const key of Object.keys(input)) {
    if (key !== "value") throw new ParamsFieldError(key, `unexpected key "${key}" in a recorded state`);
  }
  const { value } = input as { value?: unknown };
  if (value !== null && typeof value !== "string") {
    throw new ParamsFieldError("value", `expected a string or null, found ${show(value)}`);
  }
  return { value };
}

// --- The file ---

interface Store {
  data: Record<string, unknown>;
  /** Permission bits of the existing file, kept on rewrite; null when there is no file. */
  mode: number | null;
}

async function readStore(ctx: StepContext, kind: string, phase: StepPhase, p: KvSetParams): Promise<Store> {
  const st = await ctx.host.lstat(p.file);
  if (!st) return { data: {}, mode: null };
  if (st.type !== "file") {
    // a symlink too: renaming over it would replace the link, not the file it points at
    throw stepError(ctx, kind, phase, `${show(p.file)} is not a regular file, so it was left untouched`, {
      expected: "a JSON object file, or nothing",
      found: `a ${st.type}`,
      hint: "point `file` at the real file (not a symlink or directory)",
    });
  }
  const text = (await ctx.host.readFile(p.file)).toString("utf8");
  let data: unknown;
  try {
    data = text.trim() === "" ? {} : JSON.parse(text);
  } catch (error) {
    throw stepError(ctx, kind, phase, `${show(p.file)} is not valid JSON, so it was left untouched`, {
      expected: "a JSON object of keys",
      found: (error as Error).message,
      hint: "fix or remove the file by hand",
    });
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw stepError(
      ctx,
      kind,
      phase,
      `${show(p.file)} does not hold a JSON object, so it was left untouched`,
      {
        expected: "a JSON object of keys",
        found: show(data).slice(0, 200),
        hint: "fix or remove the file by hand",
      },
    );
  }
  return { data: data as Record<string, unknown>, mode: st.mode };
}

/** The key's value as a state; a non-string value there cannot be recorded or restored, so it is refused. */
function valueIn(ctx: StepContext, phase: StepPhase, p: KvSetParams, data: Record<string, unknown>) {
  if (!Object.hasOwn(data, p.key)) return null;
  const value = data[p.key];
  if (typeof value === "string") return value;
  throw stepError(
    ctx,
    KIND,
    phase,
    `key ${show(p.key)} in ${show(p.file)} is not a string, so it was left untouched`,
    {
      expected: "a string value, or no such key",
      found: show(value).slice(0, 200),
      hint: "kv.set manages string values only: change or remove that key by hand",
    },
  );
}

/** Whole-file rewrite: host.writeFile writes a temporary file beside it and renames it into place. */
async function writeStore(host: Host, file: string, store: Store): Promise<void> {
  await host.writeFile(file, `${JSON.stringify(store.data, null, 2)}\n`, {
    mode: store.mode ?? NEW_FILE_MODE,
  });
}

async function refuseMissingDir(ctx: StepContext, file: string): Promise<void> {
  const parent = posix.dirname(file);
  const st = await ctx.host.stat(parent);
  if (st?.type === "directory") return;
  throw stepError(ctx, KIND, "apply", `the directory of ${show(file)} does not exist`, {
    expected: `a directory at ${show(parent)}`,
    found: st ? `a ${st.type}` : "nothing",
    hint: "create it first, e.g. with an fs.mkdir step before this one",
  });
}
