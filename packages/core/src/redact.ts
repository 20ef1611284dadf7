import { getPath, quoteArg } from "./_utils";

/** What stands in for a secret value wherever one would leave the engine (trail, events, errors). */
export const MASK = "***";

/**
 * `scheme://user:password@host` → `scheme://user:***@host`, everywhere in `text`: the password of a
 * connection URL, known or not (a driver's message may quote the URL it was given).
 */
export function maskUrlPasswords(text: string): string {
  return text.replace(/(\/\/[^:@/\s]*:)[^@\s]*@/g, `$1${MASK}@`);
}

/** Below this length a secret is masked only where it stands whole (a word, or a whole value). */
const SUBSTRING_MIN = 4;

/** Run ids (`20261127T001502123Z-3f9a1c`, older ones without the milliseconds) and ISO timestamps. */
const STRUCTURE =
  /(?<![A-Za-z0-9])\d{8}T\d{6}(?:\d{3})?Z-[0-9a-f]{6}(?![A-Za-z0-9])|(?<!\d)\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})(?!\d)/g;

/**
 * Masks secret values inside the *values* of what leaves the engine (states, titles, messages, params
 * outside the secret paths, errors). It never touches keys, and the engine applies it field by field, so
 * a secret like `2026` cannot mask the trail's own structure (run ids, timestamps, step names).
 *
 * A secret is also found in the forms a message quotes it in: JSON-escaped (`"a\"b"`), shell-quoted
 * (`'it'\''s'`) and URL-encoded (`a%22b`).
 */
export class Redactor {
  private readonly secrets = new Set<string>();
  /** Every form of every secret, longest first, split by how it is matched. */
  private forms: { substrings: string[]; words: RegExp | undefined } = { substrings: [], words: undefined };

  /** Adds the values at `paths` of `params` (strings, numbers, and everything inside objects and arrays). */
  add(params: unknown, paths: readonly string[]): void {
    for (const path of paths) this.collect(getPath(params, path));
    this.compile();
  }

  /** Adds secret values directly. */
  addValues(values: Iterable<unknown>): void {
    for (const v of values) this.collect(v);
    this.compile();
  }

  get empty(): boolean {
    return this.secrets.size === 0;
  }

  /** Whether `value` (any JSON) holds a secret anywhere in its values. */
  holdsSecret(value: unknown): boolean {
    if (this.empty) return false;
    if (typeof value === "string") return this.text(value) !== value;
    if (typeof value === "number") return this.secrets.has(String(value));
    if (Array.isArray(value)) return value.some((v) => this.holdsSecret(v));
    if (value && typeof value === "object") return Object.values(value).some((v) => this.holdsSecret(v));
    return false;
  }

  /** A copy of a JSON-like value with every secret masked in its values (keys are left alone). */
  scrub<T>(value: T): T {
    if (this.empty) return value;
    return this.walk(value) as T;
  }

  /**
   * Masks every secret in a piece of free text; a run id or timestamp the text quotes is structure and
   * stays whole around a secret that is only part of it (a year `2026`: the id tells nothing secret).
   */
  text(s: string): string {
    if (this.empty || !s) return s;
    const hits: Array<[number, number]> = [];
    for (const v of this.forms.substrings)
      for (let i = s.indexOf(v); i !== -1; i = s.indexOf(v, i + v.length)) hits.push([i, i + v.length]);
    if (this.forms.words)
      for (const m of s.matchAll(this.forms.words)) hits.push([m.index, m.index + m[0].length]);
    if (!hits.length) return s;
    const kept = [...s.matchAll(STRUCTURE)].map((m) => [m.index, m.index + m[0].length] as const);
    const masked = kept.length
      ? hits.filter(([a, b]) => !kept.some(([x, y]) => x <= a && b <= y && b - a < y - x))
      : hits;
    // each stretch covered by one or more (overlapping) secrets becomes one mask
    masked.sort((p, q) => p[0] - q[0] || q[1] - p[1]);
    let out = "";
    let at = 0;
    for (const [a, b] of masked) {
      if (b <= at) continue;
      if (a < at) {
        at = b; // overlaps the stretch just masked: extend it
        continue;
      }
      out += `${s.slice(at, a)}${MASK}`;
      at = b;
    }
    return out + s.slice(at);
  }

  private walk(value: unknown): unknown {
    if (typeof value === "string") return this.secrets.has(value) ? MASK : this.text(value);
    if (typeof value === "number") return this.secrets.has(String(value)) ? MASK : value;
    if (Array.isArray(value)) return value.map((v) => this.walk(v));
    if (value && typeof value === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = this.walk(v);
      return out;
    }
    return value;
  }

  private collect(value: unknown): void {
    if (typeof value === "string" || typeof value === "number") {
      const s = String(value);
      if (s.length) this.secrets.add(s);
    } else if (Array.isArray(value)) for (const v of value) this.collect(v);
    else if (value && typeof value === "object") for (const v of Object.values(value)) this.collect(v);
  }

  private compile(): void {
    const substrings = new Set<string>();
    const words = new Set<string>();
    for (const s of this.secrets) {
      for (const form of formsOf(s)) (form.length >= SUBSTRING_MIN ? substrings : words).add(form);
    }
    this.forms = {
      substrings: [...substrings].sort((a, b) => b.length - a.length),
      words: words.size
        ? new RegExp(
            `(?<![A-Za-z0-9])(?:${[...words]
              .sort((a, b) => b.length - a.length)
              .map(escapeRe)
              .join("|")})(?![A-Za-z0-9])`,
            "g",
          )
        : undefined,
    };
  }
}

/** The ways a message may quote a secret: as is, JSON-escaped (once or twice), shell-quoted, URL-encoded. */
function formsOf(s: string): string[] {
  const json = JSON.stringify(s).slice(1, -1);
  const json2 = JSON.stringify(json).slice(1, -1);
  const url = encodeURIComponent(s);
  return [...new Set([s, json, json2, quoteArg(s), s.replace(/'/g, `'\\''`), url, url.replace(/%20/g, "+")])];
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
