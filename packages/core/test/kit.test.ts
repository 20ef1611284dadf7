import { describe, expect, it } from "vitest";
import {
  absolutePath,
  argv,
  arrayOf,
  boolean,
  checkFields,
  clip,
  durationMs,
  env,
  envName,
  integer,
  maskUrlPasswords,
  nonEmptyString,
  nullable,
  object,
  oneOf,
  optional,
  ParamsFieldError,
  port,
  StepError,
  string,
  stringArray,
  tempBeside,
  tempPrefix,
  withTimeout,
} from "../src/kit";

const issue = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ParamsFieldError);
    const e = error as ParamsFieldError;
    return e.issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error("expected a ParamsFieldError");
};

describe("the kit's validators", () => {
  it("absolutePath has one meaning: absolute, normalised, no NUL; / only when allowed", () => {
    expect(absolutePath("/srv/./app/../app/", "p")).toBe("/srv/app");
    expect(absolutePath("/a b/ünï'\"$x", "p")).toBe("/a b/ünï'\"$x");
    expect(issue(() => absolutePath("srv", "link"))).toEqual([
      'link: expected an absolute path on the host, found "srv"',
    ]);
    expect(issue(() => absolutePath("/a\0b", "p"))).toEqual(["p: a path cannot contain a NUL byte"]);
    expect(issue(() => absolutePath("/srv/..", "p"))).toEqual(['p: "/" cannot be used here']);
    expect(absolutePath("//", "cwd", { allowRoot: true })).toBe("/");
  });

  it("strings, numbers and choices say what was expected and what was found", () => {
    expect(string("", "s")).toBe("");
    expect(issue(() => string("a\0", "s"))).toEqual(["s: a string here cannot contain a NUL byte"]);
    expect(issue(() => nonEmptyString("", "s"))).toEqual(['s: expected a non-empty string, found ""']);
    expect(
      issue(() => nonEmptyString("UP", "s", { pattern: /^[a-z]+$/, hint: "lower-case letters" })),
    ).toEqual(['s: expected lower-case letters, found "UP"']);
    expect(integer(undefined, "n", { min: 0, fallback: 3 })).toBe(3);
    expect(issue(() => integer(1.5, "n", { min: 0, max: 9 }))).toEqual([
      "n: expected an integer from 0 to 9, found 1.5",
    ]);
    expect(issue(() => integer(-1, "n", { min: 0 }))).toEqual([
      "n: expected an integer of at least 0, found -1",
    ]);
    expect(issue(() => durationMs(2 ** 31, "t"))).toEqual([
      `t: expected a whole number of milliseconds from 0 to ${2 ** 31 - 1}, found ${2 ** 31}`,
    ]);
    expect(issue(() => port(0, "port"))).toEqual(["port: expected a TCP port from 1 to 65535, found 0"]);
    expect(boolean(undefined, "b", { fallback: true })).toBe(true);
    expect(issue(() => boolean("false", "b"))).toEqual(['b: expected true or false, found "false"']);
    expect(oneOf("halt", "o", ["halt", "rollback"] as const)).toBe("halt");
    expect(issue(() => oneOf("rolback", "o", ["halt", "rollback"]))).toEqual([
      'o: expected one of "halt", "rollback", found "rolback"; did you mean "rollback"?',
    ]);
  });

  it("arrays, argv and env name the item at fault; an env value is shown by its type only", () => {
    expect(issue(() => stringArray(["a", 1], "xs"))).toEqual(["xs.1: expected a string, found 1"]);
    expect(argv(["ls", "-l"], "cmd")).toEqual(["ls", "-l"]);
    expect(issue(() => argv("ls -l", "cmd"))[0]).toMatch(/^cmd: expected a non-empty argv array/);
    expect(issue(() => argv([""], "cmd"))).toEqual(['cmd.0: expected a program name, found ""']);
    expect(env({ A_1: "x" }, "env")).toEqual({ A_1: "x" });
    expect(issue(() => env({ "1A": "x" }, "env"))[0]).toMatch(
      /^env.1A: expected an environment variable name/,
    );
    expect(issue(() => env({ TOKEN: 42 }, "env"))).toEqual(["env.TOKEN: expected a string, found a number"]);
  });

  it("a nested object is checked in place: every issue named by its full path, at once", () => {
    const checks = {
      path: absolutePath,
      limits: optional(
        object({
          maxBytes: (v: unknown, p: string) => integer(v, p, { min: 1 }),
          maxMs: optional((v: unknown, p: string) => durationMs(v, p, { min: 1 })),
        }),
      ),
    };
    expect(checkFields({ path: "/x", limits: { maxBytes: 5 } }, checks)).toEqual({
      path: "/x",
      limits: { maxBytes: 5 },
    });
    expect(issue(() => checkFields({ path: "x", limits: { maxByte: 5 } }, checks))).toEqual([
      'path: expected an absolute path on the host, found "x"',
      'limits.maxByte: unknown param "maxByte"; did you mean "maxBytes"? (known: maxBytes, maxMs)',
    ]);
  });
});

describe("the kit's names and waiting", () => {
  it("clip never cuts a character in half; a temp name beside a 250-byte name stays under 255 bytes", () => {
    expect(clip("aé", 2)).toBe("a");
    expect(clip("€€", 4)).toBe("€");
    const long = `/srv/a${"é".repeat(124)}a`; // a 250-byte file name, 180 bytes ending mid-character
    const tmp = tempBeside(long);
    expect(tmp.startsWith(`/srv/${tempPrefix(long)}`)).toBe(true);
    const name = tmp.slice("/srv/".length);
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(255);
    expect(name).not.toContain("\uFFFD");
  });

  it("withTimeout settles at the deadline even when the work ignores its signal, and aborts the signal", async () => {
    let seen: AbortSignal | undefined;
    const started = Date.now();
    const error = await withTimeout(
      50,
      (signal) => {
        seen = signal;
        return new Promise(() => {}); // never settles, ignores the signal
      },
      { what: "the health check" },
    ).catch((e: unknown) => e);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(error).toBeInstanceOf(StepError);
    expect((error as StepError).shortMessage).toBe("the health check timed out after 50 ms");
    expect(seen?.aborted).toBe(true);
    expect(await withTimeout(10_000, async () => "done")).toBe("done");
  });

  it("withTimeout rejects with the outer signal's reason, without starting work when already aborted", async () => {
    const ac = new AbortController();
    ac.abort(new Error("stop"));
    let ran = false;
    await expect(
      withTimeout(
        10_000,
        async () => {
          ran = true;
        },
        { signal: ac.signal },
      ),
    ).rejects.toThrow("stop");
    expect(ran).toBe(false);
  });
});

describe("the kit's additions for providers", () => {
  it("absolutePath asWritten keeps the path as written; / only with allowRoot", () => {
    expect(absolutePath("/srv/app/", "cwd", { asWritten: true })).toBe("/srv/app/");
    expect(absolutePath("/srv/./app", "cwd", { asWritten: true })).toBe("/srv/./app");
    expect(absolutePath("/", "cwd", { asWritten: true, allowRoot: true })).toBe("/");
    expect(issue(() => absolutePath("//", "cwd", { asWritten: true }))).toEqual([
      'cwd: "/" cannot be used here',
    ]);
  });

  it("nullable, arrayOf and envName name the bad item", () => {
    const check = arrayOf(nullable(string));
    expect(check(["a", null], "list")).toEqual(["a", null]);
    expect(issue(() => check(["a", 1], "list"))).toEqual(["list.1: expected a string, found 1"]);
    expect(issue(() => arrayOf(string)("x", "list"))).toEqual(['list: expected an array, found "x"']);
    expect(issue(() => envName("1BAD", "env.0"))).toEqual([
      'env.0: expected an environment variable name (letters, digits and _, not starting with a digit), found "1BAD"',
    ]);
  });

  it("maskUrlPasswords masks every connection URL's password, and nothing else", () => {
    expect(maskUrlPasswords('connect postgres://app:s3cr:et@db:5432/x failed; "//u:p@h"')).toBe(
      'connect postgres://app:***@db:5432/x failed; "//u:***@h"',
    );
    expect(maskUrlPasswords("https://example.com/a:b@c")).toBe("https://example.com/a:b@c");
  });
});
