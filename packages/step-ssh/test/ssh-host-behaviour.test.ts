import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { HostError } from "@atomkit/core";
import { growingBudget, HOSTILE_STRINGS } from "@atomkit/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { sshHost } from "../src/index";
import {
  env,
  keyPath,
  knownHostsPath,
  noSshd,
  port,
  sessionPid,
  sshHostAddress,
  tempDir,
  testHost,
  waitFor,
} from "./_testbed";

const hostKeyFile = `${env.ATOMKIT_SSH_STATE_DIR ?? "/tmp/atomkit-testbed"}/sshd-${port}/ssh_host_ed25519_key.pub`;

describe.skipIf(noSshd)("sshHost behaviour", () => {
  const host = testHost();
  afterAll(() => host.close());

  it("multiplexes parallel exec and SFTP calls over one connection", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const pids = await Promise.all(
        Array.from({ length: 24 }, async (_, i) => {
          await host.writeFile(`${dir}/f${i}`, String(i));
          return sessionPid(host);
        }),
      );
      expect(new Set(pids).size).toBe(1);
      expect((await host.readdir(dir)).length).toBe(24);
      expect(await sessionPid(host)).toBe(pids[0]);
    } finally {
      await cleanup();
    }
  });

  it("names itself user@host:port, is not local, and resolves stateDir to the remote home", async () => {
    expect(host.name).toBe(`root@${sshHostAddress}:${port}`);
    expect(host.local).toBe(false);
    await host.ready();
    const home = (await host.exec(["sh", "-c", 'printf %s "$HOME"'])).stdout;
    expect(host.stateDir).toBe(`${home}/.atomkit`);
  });

  it("passes hostile strings as cwd and env values, and refuses bad env names", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      // concurrently: the calls share the connection (8 channels at a time)
      await Promise.all(
        HOSTILE_STRINGS.map(async (word, i) => {
          const r = await host.exec(["sh", "-c", 'printf %s "$ATOMKIT_V"'], { env: { ATOMKIT_V: word } });
          expect(r.stdout, `env value #${i}`).toBe(word);
          if (!word || word.includes("/") || word === "." || word === "..") return;
          const sub = `${dir}/${word}`;
          await host.mkdir(sub);
          expect((await host.exec(["pwd"], { cwd: sub })).stdout, `cwd #${i}`).toBe(`${sub}\n`);
        }),
      );
      await expect(host.exec(["true"], { env: { "A;B": "x" } })).rejects.toMatchObject({ reason: "OTHER" });
      await expect(host.exec(["-x"])).rejects.toBeInstanceOf(HostError);
      expect(existsSync("/tmp/atomkit-pwned")).toBe(false);
    } finally {
      await cleanup();
    }
  });

  it("exec input: a string, a Buffer, and a view into a larger array arrive byte for byte", async () => {
    const whole = randomBytes(70_000);
    const view = new Uint8Array(whole.buffer, whole.byteOffset + 1_000, 60_000);
    const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
    const remoteSha = async (input: string | Uint8Array) =>
      (await host.exec(["sh", "-c", "sha256sum | cut -d' ' -f1"], { input })).stdout.trim();
    expect(await remoteSha(view)).toBe(sha(view));
    expect(await remoteSha(whole)).toBe(sha(whole));
    expect(await remoteSha("héllo\n")).toBe(sha(Buffer.from("héllo\n")));
  });

  it("timeoutMs and an abort signal kill the remote process group", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      // the commands outlast the whole test: only the timeout (or the abort) can end them here, so a
      // SIGKILL proves it fired, on a box of any speed. The first must have started (written its pid,
      // checked below) before its timeout: a budget grown until it did
      const pid1 = `${dir}/pid1`;
      const err = await growingBudget(
        300,
        (timeoutMs) =>
          host
            .exec(["sh", "-c", 'echo $$ > "$1"; sleep 600', "sh", pid1], { timeoutMs })
            .catch((e: unknown) => e),
        () => existsSync(pid1) && readFileSync(pid1, "utf8").trim() !== "",
      );
      expect(err).toMatchObject({ reason: "EXIT" });
      expect(String(err)).toMatch(/SIGKILL/);
      const r = await host.exec(["sh", "-c", "sleep 600"], { timeoutMs: 200, reject: false });
      expect(r).toMatchObject({ code: null, signal: "SIGKILL" });

      const ac = new AbortController();
      const pending = host.exec(["sh", "-c", 'echo $$ > "$1"; sleep 600', "sh", `${dir}/pid2`], {
        signal: ac.signal,
      });
      await waitFor(() => existsSync(`${dir}/pid2`) && readFileSync(`${dir}/pid2`, "utf8").trim() !== "");
      ac.abort();
      await expect(pending).rejects.toBeInstanceOf(HostError);
      for (const f of ["pid1", "pid2"]) {
        const pid = Number(readFileSync(`${dir}/${f}`, "utf8"));
        await waitFor(() => !existsSync(`/proc/${pid}`));
      }
    } finally {
      await cleanup();
    }
  });

  it("normalises reasons the SFTP protocol reports as a bare FAILURE", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      await host.mkdir(`${dir}/d/sub`, { recursive: true });
      await host.mkdir(`${dir}/e/sub`, { recursive: true });
      await host.writeFile(`${dir}/f`, "x");
      await expect(host.readFile(`${dir}/d`)).rejects.toMatchObject({ reason: "EISDIR" });
      await expect(host.rm(`${dir}/d`)).rejects.toMatchObject({ reason: "EISDIR" });
      await expect(host.rename(`${dir}/e`, `${dir}/d`)).rejects.toMatchObject({ reason: "ENOTEMPTY" });
      await expect(host.symlink("x", `${dir}/f`)).rejects.toMatchObject({ reason: "EEXIST" });
      await expect(host.mkdir(`${dir}/f`)).rejects.toMatchObject({ reason: "EEXIST" });
      await expect(host.mkdir(`${dir}/f`, { recursive: true })).rejects.toMatchObject({ reason: "EEXIST" });
      await expect(host.mkdir(`${dir}/none/x`)).rejects.toMatchObject({ reason: "ENOENT" });
      await expect(host.readdir(`${dir}/f`)).rejects.toMatchObject({ reason: "ENOTDIR" });
      await expect(host.hash(`${dir}/none`)).rejects.toMatchObject({ reason: "ENOENT" });
      await expect(host.exec(["atomkit-no-such-program"])).rejects.toMatchObject({ reason: "ENOENT" });
      await expect(host.writeFile(`${dir}/none/x`, "x")).rejects.toMatchObject({ reason: "ENOENT" });
      expect(await host.stat(`${dir}/f/below`)).toBeNull();
      // a failed atomic write leaves no temporary file behind
      expect((await host.readdir(dir)).sort()).toEqual(["d", "e", "f"]);
    } finally {
      await cleanup();
    }
  });

  it("reads HostName, Port, User and IdentityFile from an ssh_config when asked", async () => {
    const { dir, cleanup } = await tempDir();
    const other = require("node:process") && (Number(process.env.ATOMKIT_SSH_PORTS?.split(" ")[1]) || port);
    await writeFile(
      `${dir}/config`,
      `Host testbed-alias\n  HostName ${sshHostAddress}\n  Port ${other}\n  User root\n  IdentityFile ${keyPath}\n`,
    );
    const h = sshHost({ host: "testbed-alias", sshConfig: `${dir}/config`, knownHosts: knownHostsPath });
    try {
      expect(h.name).toBe(`root@testbed-alias:${other}`);
      expect((await h.exec(["echo", "ok"])).stdout).toBe("ok\n");
    } finally {
      await h.close();
      await cleanup();
    }
  });

  it("accepts hashed known_hosts entries and a pinned fingerprint", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      await writeFile(`${dir}/known_hosts`, readFileSync(knownHostsPath));
      execFileSync("ssh-keygen", ["-H", "-f", `${dir}/known_hosts`], { stdio: "ignore" });
      expect(readFileSync(`${dir}/known_hosts`, "utf8")).toMatch(/^\|1\|/);
      const hashed = testHost({ knownHosts: `${dir}/known_hosts` });
      expect((await hashed.exec(["true"])).code).toBe(0);
      await hashed.close();
      const fp = execFileSync("ssh-keygen", ["-lf", hostKeyFile], { encoding: "utf8" }).split(
        " ",
      )[1] as string;
      const pinned = testHost({ hostKey: fp as `SHA256:${string}`, knownHosts: `${dir}/none` });
      expect((await pinned.exec(["true"])).code).toBe(0);
      await pinned.close();
    } finally {
      await cleanup();
    }
  });

  it("turning verification off is explicit and printed as a warning with the fingerprint", async () => {
    const warnings: string[] = [];
    const h = testHost({
      hostKey: "insecure-accept-any",
      knownHosts: "/nonexistent",
      warn: (m) => warnings.push(m),
    });
    try {
      await h.exec(["true"]);
      await h.exec(["true"]);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/WARNING: host key verification is OFF/);
      expect(warnings[0]).toMatch(/SHA256:/);
    } finally {
      await h.close();
    }
  });

  it("upload sends every byte in place: varied content over many WRITEs, read through one buffer", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      // no two WRITEs carry the same bytes: a reused read buffer sent late would show in the hash
      const data = randomBytes(3 * 1024 * 1024 + 12_345);
      await writeFile(`${dir}/src.bin`, data);
      const r = await host.upload(`${dir}/src.bin`, `${dir}/dst.bin`);
      expect(r.bytes).toBe(data.length);
      expect(r.sha256).toBe(createHash("sha256").update(data).digest("hex"));
      expect((await readFile(`${dir}/dst.bin`)).equals(data)).toBe(true);
    } finally {
      await cleanup();
    }
  });

  it("upload streams with sha256 and bounded memory; mkdir keeps modes", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      await mkdir(`${dir}/src`);
      const big = Buffer.alloc(20 * 1024 * 1024 + 3, 7);
      await writeFile(`${dir}/src/big`, big);
      const r = await host.upload(`${dir}/src/big`, `${dir}/big`);
      expect(r.bytes).toBe(big.length);
      expect(await host.hash(`${dir}/big`)).toBe(r.sha256);
      await expect(host.upload(`${dir}/src/missing`, `${dir}/x`)).rejects.toMatchObject({ reason: "ENOENT" });
      await host.mkdir(`${dir}/m`, { mode: 0o700 });
      expect((await host.stat(`${dir}/m`))?.mode).toBe(0o700);
    } finally {
      await cleanup();
    }
  });
});
