import { createHash, randomBytes } from "node:crypto";
import { rm as rmLocal, writeFile as writeLocal } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { type Host, HostError, isNotFound, LockedError } from "@atomkit/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

/** One test's host for `describeHostContract`, made fresh by `setup`. */
export interface HostFixture {
  /** The Host implementation under test. */
  host: Host;
  /** A fresh, empty directory on the host that the suite may use. */
  dir: string;
  /** Called after each test: remove `dir`, close connections. */
  cleanup?: () => Promise<void>;
}

/** How `describeHostContract` gets a host to test. */
export interface HostContractOptions {
  /** Title of the describe block. Default: "host contract". */
  name?: string;
  /** A fresh fixture per test. */
  setup: () => Promise<HostFixture>;
}

/** Words a shell would mangle: each must reach the program as one literal argument. */
export const HOSTILE_STRINGS: readonly string[] = [
  "plain",
  "with space",
  "  leading and trailing  ",
  "it's",
  'double "quotes"',
  "$(touch /tmp/atomkit-pwned)",
  "`touch /tmp/atomkit-pwned`",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal shell expansion is the point
  "$HOME ${PATH}",
  "semi; rm -rf /tmp/atomkit-nope",
  "pipe | cat",
  "amp && echo hi",
  "back\\slash",
  "new\nline",
  "tab\there",
  "glob * ? [a-z]",
  "-n",
  "--",
  "",
  "ünïcödé ✓",
  "~root",
  "#comment",
  "!bang",
  "redirect > /tmp/atomkit-nope",
];

/**
 * The contract every Host implementation keeps (localHost, sshHost, third-party hosts): argv exec with
 * hostile strings, normalised errors, atomic writes (250-byte names too), symlinks, hashing, streamed
 * upload, connect to TCP ports and unix sockets, rmdir, and leases.
 */
export function describeHostContract(options: HostContractOptions): void {
  let f: HostFixture | undefined;
  const fx = () => {
    if (!f) throw new Error("testkit: host fixture not set up");
    return f;
  };
  const p = (name: string) => `${fx().dir}/${name}`;

  describe(options.name ?? "host contract", () => {
    beforeEach(async () => {
      f = await options.setup();
    });
    afterEach(async () => {
      await f?.cleanup?.();
      f = undefined;
    });

    it("exec passes every argv word literally, even hostile ones", async () => {
      const { host } = fx();
      const r = await host.exec(["printf", "%s\\0", ...HOSTILE_STRINGS]);
      expect(r.code).toBe(0);
      expect(r.stdout.split("\0").slice(0, -1)).toEqual(HOSTILE_STRINGS);
      const pwned = await host.stat("/tmp/atomkit-pwned");
      expect(pwned).toBeNull();
    });

    it("exec reports exit codes, stderr, stdin, cwd and env", async () => {
      const { host, dir } = fx();
      await expect(host.exec(["sh", "-c", "echo oops >&2; exit 3"])).rejects.toMatchObject({
        reason: "EXIT",
        exitCode: 3,
      });
      const r = await host.exec(["sh", "-c", "echo oops >&2; exit 3"], { reject: false });
      expect(r).toMatchObject({ code: 3, stderr: "oops\n" });
      expect((await host.exec(["cat"], { input: "from stdin" })).stdout).toBe("from stdin");
      expect((await host.exec(["pwd"], { cwd: dir })).stdout.trim()).toBe(dir);
      expect(
        (await host.exec(["sh", "-c", 'printf %s "$ATOMKIT_X"'], { env: { ATOMKIT_X: "a b'c" } })).stdout,
      ).toBe("a b'c");
      await expect(host.exec(["atomkit-no-such-program-xyz"])).rejects.toBeInstanceOf(HostError);
    });

    it("stat/lstat return null for missing paths and describe files, dirs and links", async () => {
      const { host } = fx();
      expect(await host.stat(p("missing"))).toBeNull();
      expect(await host.lstat(p("missing/deeper"))).toBeNull();
      await host.writeFile(p("f"), "12345", { mode: 0o640 });
      await host.mkdir(p("d"));
      await host.symlink(p("f"), p("l"));
      expect(await host.stat(p("f"))).toMatchObject({ type: "file", size: 5, mode: 0o640 });
      expect(await host.stat(p("d"))).toMatchObject({ type: "directory" });
      expect(await host.lstat(p("l"))).toMatchObject({ type: "symlink" });
      expect(await host.stat(p("l"))).toMatchObject({ type: "file", size: 5 });
    });

    it("writeFile replaces atomically, keeps the mode given, and exclusive refuses an existing path", async () => {
      const { host } = fx();
      await host.writeFile(p("a"), "one");
      await host.writeFile(p("a"), Buffer.from("two"), { mode: 0o600 });
      expect((await host.readFile(p("a"))).toString()).toBe("two");
      expect((await host.stat(p("a")))?.mode).toBe(0o600);
      await expect(host.writeFile(p("a"), "three", { exclusive: true })).rejects.toMatchObject({
        reason: "EEXIST",
      });
      await host.writeFile(p("b"), "new", { exclusive: true });
      expect((await host.readFile(p("b"))).toString()).toBe("new");
      // no temporary files are left beside it
      expect((await host.readdir(fx().dir)).sort()).toEqual(["a", "b"]);
    });

    it("errors carry a normalised reason", async () => {
      const { host } = fx();
      const e = await host.readFile(p("missing")).catch((x: unknown) => x);
      expect(isNotFound(e)).toBe(true);
      expect(e).toBeInstanceOf(HostError);
      expect(String((e as Error).message)).toContain("missing");
      await host.mkdir(p("d"));
      await expect(host.mkdir(p("d"))).rejects.toMatchObject({ reason: "EEXIST" });
      await host.mkdir(p("d/x/y"), { recursive: true });
      await host.mkdir(p("d/x/y"), { recursive: true });
    });

    it("realpath resolves symlinks, . and .. (when the host has it)", async (t) => {
      const { host } = fx();
      if (!host.realpath) return t.skip();
      await host.mkdir(p("rp/releases/2"), { recursive: true });
      await host.symlink("releases/2", p("rp/current"));
      await host.symlink("current", p("rp/again"));
      const base = await host.realpath(p("rp"));
      expect(base.startsWith("/")).toBe(true);
      expect(await host.realpath(p("rp/again"))).toBe(`${base}/releases/2`);
      expect(await host.realpath(p("rp/releases/./2/../2"))).toBe(`${base}/releases/2`);
      await expect(host.realpath(p("rp/missing/x"))).rejects.toMatchObject({ reason: "ENOENT" });
    });

    it("readdir, rename (replacing), rm (recursive, force), symlink, readlink, chmod", async () => {
      const { host } = fx();
      await host.mkdir(p("tree/sub"), { recursive: true });
      await host.writeFile(p("tree/sub/file"), "x");
      expect(await host.readdir(p("tree"))).toEqual(["sub"]);
      await host.writeFile(p("x"), "x");
      await host.writeFile(p("y"), "y");
      await host.rename(p("x"), p("y"));
      expect((await host.readFile(p("y"))).toString()).toBe("x");
      expect(await host.stat(p("x"))).toBeNull();
      await host.symlink("releases/1", p("link"));
      expect(await host.readlink(p("link"))).toBe("releases/1");
      await host.symlink("releases/2", p("link.tmp"));
      await host.rename(p("link.tmp"), p("link"));
      expect(await host.readlink(p("link"))).toBe("releases/2");
      await host.chmod(p("y"), 0o700);
      expect((await host.stat(p("y")))?.mode).toBe(0o700);
      await host.rm(p("tree"), { recursive: true });
      expect(await host.stat(p("tree"))).toBeNull();
      await host.rm(p("tree"), { recursive: true, force: true });
      await expect(host.rm(p("tree"))).rejects.toMatchObject({ reason: "ENOENT" });
    });

    it("hash and upload agree with a local sha256 of a multi-megabyte file", async () => {
      const { host } = fx();
      const local = join(tmpdir(), `atomkit-upload-${randomBytes(4).toString("hex")}`);
      const data = randomBytes(3 * 1024 * 1024 + 17);
      await writeLocal(local, data);
      try {
        const expected = createHash("sha256").update(data).digest("hex");
        const r = await host.upload(local, p("up.bin"), { mode: 0o640 });
        expect(r).toEqual({ sha256: expected, bytes: data.length });
        expect(await host.hash(p("up.bin"))).toBe(expected);
        expect((await host.stat(p("up.bin")))?.mode).toBe(0o640);
      } finally {
        await rmLocal(local, { force: true }); // 3 MB in /tmp per run otherwise
      }
    });

    it("connect opens a stream to a TCP port ({ port }, or a bare port: deprecated) and to a unix socket ({ path })", async () => {
      const { host } = fx();
      const greet = (what: string) => createServer((s) => s.end(`hello from ${what}`));
      const tcp = greet("port");
      await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
      const port = (tcp.address() as { port: number }).port;
      // a short path: sun_path holds ~107 bytes, and a fixture's dir may be long
      const path = join(tmpdir(), `atk-${randomBytes(4).toString("hex")}.sock`);
      const unix = greet("socket");
      await new Promise<void>((r) => unix.listen(path, r));
      try {
        expect(await readAll(await host.connect({ port }))).toBe("hello from port");
        expect(await readAll(await host.connect({ port, hostname: "127.0.0.1" }))).toBe("hello from port");
        expect(await readAll(await host.connect(port))).toBe("hello from port");
        expect(await readAll(await host.connect({ path }))).toBe("hello from socket");
      } finally {
        tcp.close();
        unix.close();
        await rmLocal(path, { force: true });
      }
      await expect(host.connect({ port: 1 })).rejects.toBeInstanceOf(HostError);
      await expect(host.connect({ path })).rejects.toBeInstanceOf(HostError);
      await expect(host.connect({ socket: path } as never)).rejects.toBeInstanceOf(HostError);
    });

    it("rmdir removes an empty directory only: ENOTEMPTY, ENOTDIR, ENOENT otherwise", async () => {
      const { host } = fx();
      await host.mkdir(p("empty"));
      await host.rmdir(p("empty"));
      expect(await host.stat(p("empty"))).toBeNull();
      await host.mkdir(p("full"));
      await host.writeFile(p("full/kept"), "someone's file");
      await expect(host.rmdir(p("full"))).rejects.toMatchObject({ reason: "ENOTEMPTY" });
      expect((await host.readFile(p("full/kept"))).toString()).toBe("someone's file");
      await expect(host.rmdir(p("full/kept"))).rejects.toMatchObject({ reason: "ENOTDIR" });
      await expect(host.rmdir(p("missing"))).rejects.toMatchObject({ reason: "ENOENT" });
    });

    it("writeFile takes a file name of 250 bytes (legal: NAME_MAX is 255), plain and exclusive", async () => {
      const { host } = fx();
      // the temporary name beside it must be shortened, or the write fails with ENAMETOOLONG
      for (const name of ["a".repeat(250), "é".repeat(125)]) {
        expect(Buffer.byteLength(name)).toBe(250);
        await host.writeFile(p(name), "long");
        await host.writeFile(p(name), "longer");
        expect((await host.readFile(p(name))).toString()).toBe("longer");
        await host.rm(p(name));
        await host.writeFile(p(name), "exclusive", { exclusive: true });
        expect((await host.readFile(p(name))).toString()).toBe("exclusive");
      }
      expect((await host.readdir(fx().dir)).length).toBe(2);
    });

    it("lock: one holder at a time, the second fails naming the holder; stale taken over only when asked", async () => {
      const { host } = fx();
      const name = `contract-${randomBytes(3).toString("hex")}`;
      const first = await host.lock(name, { owner: "alice", ttlMs: 60_000 });
      const err = await host.lock(name, { owner: "bob" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LockedError);
      expect((err as LockedError).message).toContain("alice");
      expect((err as LockedError).code).toBe("ATOM_LOCKED");
      await first.release();
      const second = await host.lock(name, { owner: "bob", ttlMs: 60 });
      await second.release();
      // a lease whose heartbeat stopped: write one by hand, as a dead process would leave it
      const old = new Date(Date.now() - 120_000).toISOString();
      await host.writeFile(
        `${host.stateDir}/locks/${name}.lock`,
        JSON.stringify({
          name,
          owner: "dead",
          pid: 1,
          machine: "gone",
          host: host.name,
          startedAt: old,
          heartbeatAt: old,
          ttlMs: 1000,
          token: "x",
        }),
      );
      const stale = await host.lock(name, { owner: "carol" }).catch((e: unknown) => e);
      expect(stale).toMatchObject({ code: "ATOM_LOCKED", stale: true });
      const taken = await host.lock(name, { owner: "carol", breakStale: true });
      expect(taken.info.owner).toBe("carol");
      await taken.release();
      expect(await host.stat(`${host.stateDir}/locks/${name}.lock`)).toBeNull();
    });
  });
}

/** Everything a server sends until it ends the stream. */
function readAll(socket: Duplex): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let out = "";
    socket.on("data", (d: Buffer) => {
      out += d;
    });
    socket.on("end", () => {
      socket.destroy();
      resolve(out);
    });
    socket.on("error", reject);
  });
}
