import { describe, expect, it } from "vitest";
import { atom, defineStep, localHost, ParamsError, plan } from "../src/index";
import {
  absolutePath,
  checkFields,
  closest,
  integer,
  ParamsFieldError,
  paramsObject,
  show,
} from "../src/kit";

/** A nested check, as a provider's health check is: its own checkFields at its own path. */
const health = (value: unknown, path: string) =>
  value === undefined
    ? undefined
    : checkFields(
        value,
        {
          http: (v, p) =>
            v === undefined ? undefined : checkFields(v, { port: (x, q) => integer(x, q, { min: 1 }) }, p),
          tcp: (v) => v,
          timeoutMs: (v, p) => integer(v, p, { min: 1, fallback: 30_000 }),
        },
        path,
      );

const startParams = (input: unknown) =>
  checkFields(input, {
    pidFile: absolutePath,
    cwd: (v, p) => (v === undefined ? "/" : absolutePath(v, p)),
    health,
  });

function caught(fn: () => unknown): ParamsFieldError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ParamsFieldError);
    return error as ParamsFieldError;
  }
  throw new Error("expected a ParamsFieldError");
}

describe("checkFields", () => {
  it("reports every invalid field and every unknown key at once, nested ones by their full path", () => {
    const e = caught(() =>
      startParams({ pidFile: "run/app.pid", cwd: "srv/app", health: { htp: { port: 8080 } } }),
    );
    expect(e.issues.map((i) => i.path)).toEqual(["pidFile", "cwd", "health.htp"]);
    expect(e.issues[0]!.message).toBe('expected an absolute path on the host, found "run/app.pid"');
    expect(e.issues[1]!.message).toBe('expected an absolute path on the host, found "srv/app"');
    expect(e.issues[2]!.message).toMatch(
      /^unknown param "htp"; did you mean "http"\? \(known: http, tcp, timeoutMs\)$/,
    );
    // a short first line, then one line per field
    expect(e.message.split("\n")).toEqual([
      "3 invalid fields:",
      `  - pidFile: ${e.issues[0]!.message}`,
      `  - cwd: ${e.issues[1]!.message}`,
      `  - health.htp: ${e.issues[2]!.message}`,
    ]);
    expect(e.path).toBe("pidFile");
  });

  it("returns the checked values, leaving out fields whose check gave undefined", () => {
    expect(startParams({ pidFile: "/run/./app.pid", health: { http: { port: 80 } } })).toEqual({
      pidFile: "/run/app.pid",
      cwd: "/",
      health: { http: { port: 80 }, timeoutMs: 30_000 },
    });
    expect("health" in startParams({ pidFile: "/a.pid" })).toBe(false);
  });

  it("a typo'd key is one mistake: the missing key it was meant as is not reported again", () => {
    const e = caught(() => startParams({ pidfile: "/run/app.pid" }));
    expect(e.issues).toEqual([
      {
        path: "pidfile",
        message: 'unknown param "pidfile"; did you mean "pidFile"? (known: pidFile, cwd, health)',
      },
    ]);
  });

  it("a key given as undefined gives nothing; a key with no close match gets no guess", () => {
    expect(startParams({ pidFile: "/a.pid", extra: undefined })).toEqual({ pidFile: "/a.pid", cwd: "/" });
    const e = caught(() => startParams({ pidFile: "/a.pid", zzzzzz: 1 }));
    expect(e.issues[0]!.message).toBe('unknown param "zzzzzz" (known: pidFile, cwd, health)');
  });

  it("refuses a non-object, naming the nested path; a check's plain error is reported under its field", () => {
    expect(caught(() => startParams(["x"])).issues).toEqual([
      { path: "", message: 'expected an object of params, found ["x"]' },
    ]);
    expect(caught(() => startParams({ pidFile: "/a", health: 5 })).issues).toEqual([
      { path: "health", message: "expected an object, found 5" },
    ]);
    const e = caught(() =>
      checkFields(
        { a: 1 },
        {
          a: () => {
            throw new Error("boom");
          },
        },
      ),
    );
    expect(e.issues).toEqual([{ path: "a", message: "boom" }]);
  });

  it("paramsObject names every unknown key at once", () => {
    const e = caught(() => paramsObject({ pth: "/x", mod: 1, path: "/x" }, ["path", "mode"]));
    expect(e.issues.map((i) => [i.path, i.message.split(";")[1]?.trim().split(" (")[0]])).toEqual([
      ["pth", 'did you mean "path"?'],
      ["mod", 'did you mean "mode"?'],
    ]);
  });

  it("closest: edit distance up to 2 or a prefix, case aside", () => {
    expect(closest("htp", ["http", "tcp"])).toBe("http");
    expect(closest("PIDFILE", ["pidFile"])).toBe("pidFile");
    expect(closest("xyz", ["http", "tcp"])).toBeUndefined();
    expect(show(undefined)).toBe("nothing");
  });
});

describe("the engine reports every collected issue", () => {
  const kind = defineStep({
    kind: "test.start",
    params: startParams,
    observe: async () => null,
    apply: async () => {},
    undo: async () => {},
  });

  it("plan throws one ParamsError with one issue per field, each naming step and field", async () => {
    const a = atom("release", {
      steps: [kind({ pidFile: "run/app.pid", cwd: "srv", health: { htp: {} } } as never, { name: "start" })],
    });
    const error = await plan(a, { host: localHost({ stateDir: "/tmp/unused" }) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ParamsError);
    const pe = error as ParamsError;
    expect(pe.issues.map((i) => [i.step, i.kind, i.path])).toEqual([
      ["start", "test.start", "pidFile"],
      ["start", "test.start", "cwd"],
      ["start", "test.start", "health.htp"],
    ]);
    const lines = pe.shortMessage.split("\n");
    expect(lines[0]).toBe("invalid params, nothing was run:");
    expect(lines[1]).toBe(
      '  - step "start" (test.start) field "pidFile": expected an absolute path on the host, found "run/app.pid"',
    );
    expect(lines[3]).toMatch(/field "health\.htp": unknown param "htp"; did you mean "http"\?/);
  });

  it("a function validator throwing a Standard Schema-like error (zod's parse) has each issue reported", async () => {
    const zodLike = defineStep({
      kind: "test.zodlike",
      params: () => {
        throw Object.assign(new Error("[zod] 2 issues"), {
          issues: [
            { path: ["a", 0], message: "expected a string" },
            { path: [{ key: "b" }], message: "required" },
          ],
        });
      },
      observe: async () => null,
      apply: async () => {},
      undo: async () => {},
    });
    const error = (await plan(atom("x", { steps: [zodLike({})] })).catch((e: unknown) => e)) as ParamsError;
    expect(error.issues.map((i) => [i.path, i.message])).toEqual([
      ["a.0", "expected a string"],
      ["b", "required"],
    ]);
  });
});
