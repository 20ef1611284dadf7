// Every docker kind checks the exact shape of a state read back from a trail (a trail is evidence,
// never a command): a forged or damaged state is refused naming the field.
import { ParamsFieldError } from "@atomkit/core/kit";
import { describe, expect, it } from "vitest";
import { ensureImage, removeContainer, runContainer, stopContainer, swapContainer } from "../src/index";

const ID = "a".repeat(64);
const IMAGE_ID = `sha256:${"b".repeat(64)}`;
const facts = () => ({
  name: "web",
  image: { ref: "registry.local/web:2", id: IMAGE_ID },
  entrypoint: null,
  cmd: ["httpd", "-f"],
  env: { names: ["PATH", "TOKEN"], sha256: "c".repeat(64) },
  user: "",
  workdir: "",
  network: "host",
  ports: [],
  mounts: [{ type: "bind", source: "/srv/www", target: "/www", readOnly: true }],
  labels: { "com.example.team": "web" },
  init: true,
  restart: "no",
  running: true,
  evidence: {
    id: ID,
    created: "2026-12-01T22:55:31.252547441Z",
    startedAt: "2026-12-01T22:55:31.448632176Z",
    finishedAt: "0001-01-01T00:00:00Z",
    status: "running",
    health: null,
    atomkit: { "org.atomkit.kind": "docker.swap", "org.atomkit.run": "20261201T225531Z-abcdef" },
  },
});
const swapState = () => ({
  current: facts(),
  evidence: { pending: [{ id: "d".repeat(64), name: "web-next-r1", running: false, run: "r1" }] },
});

type Check = (value: unknown) => unknown;
// biome-ignore lint/suspicious/noExplicitAny: a forgery edits any field of any shape
type Forged = any;
const checkOf = (kind: { definition: { state?: unknown } }) => kind.definition.state as Check;

/** The path a check names when it refuses `value`. */
function refusal(check: Check, value: unknown): string {
  try {
    check(value);
  } catch (error) {
    expect(error).toBeInstanceOf(ParamsFieldError);
    return (error as ParamsFieldError).path;
  }
  throw new Error(`accepted: ${JSON.stringify(value)}`);
}

/** A deep copy with `edit` applied. */
function forge<T>(value: T, edit: (v: Forged) => void): T {
  const copy = structuredClone(value);
  edit(copy);
  return copy;
}

describe("state checks of the docker kinds", () => {
  it("every kind declares one, and a real shape passes unchanged", () => {
    for (const kind of [runContainer, stopContainer, removeContainer]) {
      expect(checkOf(kind)({ current: facts() })).toEqual({ current: facts() });
      expect(checkOf(kind)({ current: null })).toEqual({ current: null });
    }
    expect(checkOf(swapContainer)(swapState())).toEqual(swapState());
    expect(checkOf(swapContainer)({ current: null, evidence: { pending: [] } })).toEqual({
      current: null,
      evidence: { pending: [] },
    });
    const images = {
      images: [
        { ref: "web:2", id: IMAGE_ID },
        { ref: "web:latest", id: null },
      ],
    };
    expect(checkOf(ensureImage)(images)).toEqual(images);
  });

  it("the container kinds refuse forged shapes, naming the field", () => {
    const cases: Array<[(s: Forged) => void, string]> = [
      [(s) => (s.extra = 1), "extra"],
      [(s) => delete s.current, "current"],
      [(s) => (s.current = "web"), "current"],
      [(s) => delete s.current.evidence, "current.evidence"],
      [(s) => (s.current.evidence.id = "web"), "current.evidence.id"],
      [(s) => (s.current.evidence.id = "A".repeat(64)), "current.evidence.id"],
      [
        (s) => (s.current.evidence.atomkit["org.atomkit.anything"] = "x"),
        "current.evidence.atomkit.org.atomkit.anything",
      ],
      [(s) => (s.current.name = "../web"), "current.name"],
      [(s) => (s.current.name = "web; rm -rf /"), "current.name"],
      [(s) => (s.current.image.id = "latest"), "current.image.id"],
      [(s) => (s.current.image = "web:2"), "current.image"],
      [(s) => (s.current.env = ["TOKEN=x"]), "current.env"],
      [(s) => (s.current.env.values = ["x"]), "current.env.values"],
      [(s) => (s.current.env.sha256 = "x"), "current.env.sha256"],
      [(s) => (s.current.cmd = "httpd -f"), "current.cmd"],
      [(s) => (s.current.running = "yes"), "current.running"],
      [(s) => (s.current.labels["com.example.team"] = 1), "current.labels.com.example.team"],
      [(s) => (s.current.mounts[0].readOnly = 1), "current.mounts.0.readOnly"],
      [(s) => (s.current.mounts[0].mode = "rw"), "current.mounts.0.mode"],
      [(s) => (s.current.ports = "80"), "current.ports"],
      [(s) => (s.current.id = ID), "current.id"], // the old shape: the id is evidence now
    ];
    for (const kind of [runContainer, stopContainer, removeContainer]) {
      for (const [edit, path] of cases) {
        expect(refusal(checkOf(kind), forge({ current: facts() }, edit)), path).toBe(path);
      }
      expect(refusal(checkOf(kind), null)).toBe("");
      expect(refusal(checkOf(kind), [])).toBe("");
    }
  });

  it("docker.swap refuses forged shapes, naming the field", () => {
    const cases: Array<[(s: Forged) => void, string]> = [
      [(s) => delete s.evidence, "evidence"],
      [(s) => (s.pending = []), "pending"], // the old shape
      [(s) => (s.evidence.pending = {}), "evidence.pending"],
      [(s) => (s.evidence.other = []), "evidence.other"],
      [(s) => (s.evidence.pending[0].id = "web"), "evidence.pending.0.id"],
      [(s) => delete s.evidence.pending[0].run, "evidence.pending.0.run"],
      [(s) => (s.evidence.pending[0].name = "a/b"), "evidence.pending.0.name"],
      [(s) => (s.evidence.pending[0].running = null), "evidence.pending.0.running"],
      [(s) => (s.current.evidence.id = 7), "current.evidence.id"],
    ];
    for (const [edit, path] of cases) {
      expect(refusal(checkOf(swapContainer), forge(swapState(), edit)), path).toBe(path);
    }
  });

  it("docker.image refuses forged shapes, naming the field", () => {
    const good = { images: [{ ref: "web:2", id: IMAGE_ID }] };
    const cases: Array<[(s: Forged) => void, string]> = [
      [(s) => (s.images = {}), "images"],
      [(s) => (s.extra = true), "extra"],
      [(s) => (s.images[0].id = "web:1"), "images.0.id"],
      [(s) => delete s.images[0].id, "images.0.id"],
      [(s) => (s.images[0].ref = "web 2; rm -rf /"), "images.0.ref"],
      [(s) => (s.images[0].ref = "a//b"), "images.0.ref"],
      [(s) => (s.images[0].tag = "2"), "images.0.tag"],
    ];
    for (const [edit, path] of cases) {
      expect(refusal(checkOf(ensureImage), forge(good, edit)), path).toBe(path);
    }
  });
});
