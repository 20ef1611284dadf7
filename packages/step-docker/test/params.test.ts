import { validateParams } from "@atomkit/core";
import { describe, expect, it } from "vitest";
import { ensureImage, stopContainer, swapContainer } from "../src/index";

// Every invalid field of a step is reported at once (core's checkFields), nested ones by their full
// path, a mistyped key with the key meant. Validation needs no daemon.

const issuesOf = async (step: Parameters<typeof validateParams>[0]) =>
  ((await validateParams(step)).issues ?? []).map((i) => [i.path, i.message]);

describe("step-docker params: every invalid field at once", () => {
  it("docker.swap: the spec's fields, nested mounts and health, unknown keys", async () => {
    const issues = await issuesOf(
      swapContainer({
        name: "web",
        image: "app:2",
        cmd: "httpd -f",
        network: "bridge",
        mounts: [{ source: "relative", target: "/x", readonly: true }],
        health: { htp: { port: 80 } },
        order: "blue-green",
        stopTimeout: 5,
      } as never),
    );
    expect(issues.map(([path]) => path)).toEqual([
      "cmd",
      "mounts.0.readonly",
      "network",
      "health.htp",
      "order",
      "stopTimeout",
    ]);
    expect(issues[0]![1]).toBe(
      'expected a non-empty argv array, e.g. ["systemctl", "reload", "nginx"] (not a shell string), found "httpd -f"',
    );
    expect(issues[1]![1]).toMatch(/^unknown param "readonly"; did you mean "readOnly"\?/);
    expect(issues[2]![1]).toBe('expected one of "host", "none", found "bridge"');
    expect(issues[3]![1]).toMatch(/^unknown param "htp"; did you mean "http"\?/);
    expect(issues[5]![1]).toMatch(/^unknown param "stopTimeout"; did you mean "stopTimeoutMs"\?/);
    // once the mount's keys are right, its source is checked against its type
    expect(
      await issuesOf(
        swapContainer({ name: "web", image: "app:2", mounts: [{ source: "rel", target: "/x" }] }),
      ),
    ).toEqual([["mounts.0.source", 'expected an absolute path on the host, found "rel"']]);
  });

  it("docker.image and docker.stop, with a nested connection", async () => {
    expect(
      (await issuesOf(ensureImage({ image: "", load: "app.tar", pul: true } as never))).map(([p]) => p),
    ).toEqual(["image", "load", "pul"]);
    expect(
      (
        await issuesOf(
          stopContainer({
            name: "-bad",
            stopTimeoutMs: -1,
            docker: { socketPath: "docker.sock", waitMs: -1, sockPath: "/x" },
          } as never),
        )
      ).map(([p]) => p),
    ).toEqual(["docker.socketPath", "docker.waitMs", "docker.sockPath", "name", "stopTimeoutMs"]);
    // the SSH transport is gone: its fields are refused, pointing at sshHost
    const old = await issuesOf(
      stopContainer({ name: "web", docker: { protocol: "ssh", host: "h", username: "u" } } as never),
    );
    expect(old.map(([p]) => p)).toEqual(["docker.protocol"]);
    expect(old[0]?.[1]).toContain("sshHost(");
  });
});
