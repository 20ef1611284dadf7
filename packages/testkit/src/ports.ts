import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

// Test servers (processes, containers on the host network) of packages whose suites run at the same
// time must never be handed the same port. bind(0) cannot promise that: a port is free again between
// the probe closing it and the server binding it, and another process may take it in that gap (seen:
// a busybox httpd of the docker suite answering the process suite's health check). So each package
// gets its own slice below the kernel's ephemeral range (32768+), and each vitest worker a part of it.
const SLICES: Record<string, number> = {
  "@atomkit/core": 0,
  "@atomkit/testkit": 1,
  "@atomkit/step-fs": 2,
  "@atomkit/step-symlink": 3,
  "@atomkit/step-process": 4,
  "@atomkit/step-ssh": 5,
  "@atomkit/step-docker": 6,
  "@atomkit/cli": 7,
  "@atomkit/demo": 8,
};
const BASE = 20_000;
/** Ports this process has handed out: each is given once (a worker holds at most a file's worth). */
const handedOut = new Set<number>();
const SLICE = 1_000;
const WORKERS = 10;

function packageName(): string {
  try {
    return (
      (JSON.parse(readFileSync(join(process.cwd(), "package.json"), "utf8")) as { name?: string }).name ?? ""
    );
  } catch {
    return "";
  }
}

function slice(): number {
  const name = packageName();
  if (name in SLICES) return SLICES[name]!;
  // third-party packages: one of the slices above ours, by a hash of the name
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return 9 + (h % 3);
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/**
 * A free TCP port on 127.0.0.1 for a test server, from a range no other package's suite (nor another
 * vitest worker of this one) draws from.
 */
export async function freePort(): Promise<number> {
  const worker = Number(process.env.VITEST_POOL_ID ?? process.env.VITEST_WORKER_ID ?? 1) % WORKERS;
  const start = BASE + slice() * SLICE + worker * (SLICE / WORKERS);
  for (let i = 0; i < 200; i++) {
    const port = start + Math.floor(Math.random() * (SLICE / WORKERS));
    // never the same port twice in a row: `[await freePort(), await freePort()]` asks before either
    // is bound (seen: a start-first swap given one port for both containers)
    if (handedOut.has(port) && handedOut.size < SLICE / WORKERS) continue;
    if (await canBind(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${start}-${start + SLICE / WORKERS - 1}`);
}
