import { validateParams } from "@atomkit/core";
import { describe, expect, it } from "vitest";
import { makeDir, pruneReleases, removePath, untar, uploadFile, writeFile } from "../src/index";

// Every invalid field of a step is reported at once (core's checkFields), each with its path and
// what was expected and found, and a mistyped key with the key meant.

const issuesOf = async (step: Parameters<typeof validateParams>[0]) =>
  ((await validateParams(step)).issues ?? []).map((i) => [i.path, i.message]);

describe("step-fs params: every invalid field at once", () => {
  it("fs.mkdir, fs.remove, fs.write", async () => {
    expect(await issuesOf(makeDir({ path: "srv", mode: "999", recursive: "yes" } as never))).toEqual([
      ["path", 'expected an absolute path on the host, found "srv"'],
      ["mode", 'expected a mode like 0o644 or "0644", found "999"'],
      ["recursive", 'expected true or false, found "yes"'],
    ]);
    expect(await issuesOf(removePath({ path: "a", trash: "b" } as never))).toEqual([
      ["path", 'expected an absolute path on the host, found "a"'],
      ["trash", 'expected an absolute path on the host, found "b"'],
    ]);
    expect(await issuesOf(writeFile({ path: "/srv/x", content: 42, encodng: "base64" } as never))).toEqual([
      ["content", "expected a string, found a number"],
      ["encodng", 'unknown param "encodng"; did you mean "encoding"? (known: path, content, encoding, mode)'],
    ]);
  });

  it("fs.upload, fs.untar (nested limits), fs.prune", async () => {
    expect(await issuesOf(uploadFile({ source: "", path: "x", sha256: "abc" } as never))).toEqual([
      ["source", 'expected a path to a local file, found ""'],
      ["path", 'expected an absolute path on the host, found "x"'],
      ["sha256", 'expected 64 hex digits, found "abc"'],
    ]);
    expect(
      await issuesOf(
        untar({ archive: "/a.tar", path: "r", strip: -1, limits: { maxBytes: 0, maxDepht: 3 } } as never),
      ),
    ).toEqual([
      ["path", 'expected an absolute path on the host, found "r"'],
      ["strip", "expected an integer from 0 to 64, found -1"],
      ["limits.maxBytes", "expected an integer of at least 1, found 0"],
      [
        "limits.maxDepht",
        'unknown param "maxDepht"; did you mean "maxDepth"? (known: maxBytes, maxEntries, maxDepth, maxMs)',
      ],
    ]);
    expect(
      await issuesOf(pruneReleases({ dir: "releases", keep: 0, protect: ["a/b"], order: "size" } as never)),
    ).toEqual([
      ["dir", 'expected an absolute path on the host, found "releases"'],
      ["keep", "expected an integer of at least 1, found 0"],
      ["protect.0", 'expected a release name (no "/") or absolute path, found "a/b"'],
      ["order", 'expected "name" or "mtime", found "size"'],
    ]);
  });
});
