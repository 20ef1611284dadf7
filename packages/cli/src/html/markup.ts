// Every value that came from a trail is data, never markup: the `html` tag escapes each interpolation
// unless it is markup this module built itself (`Markup`). Hand-concatenated strings never reach the
// page, so a step name, a param, a state or an error text cannot open a tag or an attribute.

/** Markup built by `html` (or `raw` of a constant): the only thing inserted without escaping. */
export class Markup {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escapes text for element content and for double- or single-quoted attribute values. */
export function esc(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

type Part = Markup | string | number | boolean | null | undefined | readonly Part[];

function part(value: Part): string {
  if (value === null || value === undefined || value === false) return "";
  if (value instanceof Markup) return value.text;
  if (Array.isArray(value)) return (value as readonly Part[]).map(part).join("");
  return esc(value);
}

/** A template whose interpolations are escaped (arrays joined, `Markup` kept, null/undefined/false empty). */
export function html(strings: TemplateStringsArray, ...values: Part[]): Markup {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += part(values[i]!) + strings[i + 1]!;
  return new Markup(out);
}

/** For constants of this module only (CSS): never pass it anything read from a trail. */
export function raw(constant: string): Markup {
  return new Markup(constant);
}

/**
 * An element id from any string: letters, digits, `-` and `_` only, so it is safe in `href="#…"`; any
 * other character (and `_` itself) becomes `_<hex>_`, so two names never share an id.
 */
export function anchor(prefix: string, id: string): string {
  return `${prefix}-${id.replace(/[^A-Za-z0-9-]/g, (c) => `_${c.codePointAt(0)!.toString(16)}_`)}`;
}

const OUTCOMES = new Set([
  "committed",
  "rolled-back",
  "rollback-failed",
  "partial",
  "unfinished",
  "refused",
  "not-run",
]);

/** Only known outcomes become class names: a status the trail made up is styled as a problem (corrupt). */
export function outcomeClass(status: string): string {
  return OUTCOMES.has(status) ? status : "corrupt";
}

/** A time as ISO text, or "?" for one the trail did not record readably. */
export function iso(t: number | undefined): string {
  return t !== undefined && Number.isFinite(t) ? new Date(t).toISOString() : "?";
}

/** The largest and smallest of many numbers without spreading them into arguments (no stack limit). */
export function extent(values: Iterable<number>): { min: number; max: number } {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

/** A long text cut for display, saying how much was left out (the file stays small and readable). */
export function clip(text: string, max = 400): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length - max} more characters)` : text;
}

/** A JSON value as one readable line (strings without quotes when they are the whole value). */
export function show(value: unknown, max = 400): string {
  if (value === undefined) return "—";
  return clip(typeof value === "string" ? value : JSON.stringify(value), max);
}

export function duration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.round((ms % 60_000) / 1000)} s`;
}
