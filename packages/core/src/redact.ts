import { getPath } from "./_utils";

const MASK = "***";

/**
 * Removes secret values from anything headed for the trail, an event or a log line. Keys listed as
 * secret are dropped from params by the engine; this catches the same values wherever else they appear
 * (an error message quoting a command line, a state).
 */
export class Redactor {
  private readonly values: string[] = [];

  add(params: unknown, paths: readonly string[]): void {
    for (const path of paths) this.collect(getPath(params, path));
    // longest first, so a secret containing another is masked whole
    this.values.sort((a, b) => b.length - a.length);
  }

  get empty(): boolean {
    return this.values.length === 0;
  }

  scrub<T>(value: T): T {
    if (this.empty) return value;
    return this.walk(value) as T;
  }

  text(s: string): string {
    let out = s;
    for (const v of this.values) if (out.includes(v)) out = out.split(v).join(MASK);
    return out;
  }

  private walk(value: unknown): unknown {
    if (typeof value === "string") return this.text(value);
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
      // very short values would mask unrelated text everywhere; they are still kept out of params
      if (s.length >= 4 && !this.values.includes(s)) this.values.push(s);
    } else if (Array.isArray(value)) for (const v of value) this.collect(v);
    else if (value && typeof value === "object") for (const v of Object.values(value)) this.collect(v);
  }
}
