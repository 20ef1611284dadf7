import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "tar";

/**
 * The app the demo deploys: a tiny HTTP server that prints its version. It answers 503 on `/` while
 * the drain flag file exists (the atom's pre/post steps take it out of traffic and back), and `/health`
 * answers 500 in a release built `broken` — the failure the demo rolls back.
 */
export const SERVER_SOURCE = `// demo app deployed by atomkit: node server.cjs <port> <drain-flag-file>
const http = require("node:http");
const fs = require("node:fs");
const path = require("node:path");
const [port, drainFile] = process.argv.slice(2);
const version = fs.readFileSync(path.join(__dirname, "VERSION"), "utf8").trim();
const broken = fs.existsSync(path.join(__dirname, "BROKEN"));
http
  .createServer((req, res) => {
    if (req.url === "/health") {
      res.writeHead(broken ? 500 : 200);
      return res.end(broken ? "broken on purpose\\n" : "ok " + version + "\\n");
    }
    if (drainFile && fs.existsSync(drainFile)) {
      res.writeHead(503);
      return res.end("draining (" + version + ")\\n");
    }
    if (req.url === "/env") return res.end(JSON.stringify({ greeting: process.env.GREETING ?? null, token: process.env.TOKEN ? "set" : null }));
    res.end("hello from " + version + (process.env.GREETING ? " (" + process.env.GREETING + ")" : "") + "\\n");
  })
  .listen(Number(port), "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
`;

/** Builds `app-<version>.tar.gz` in `dir` and returns its path. */
export async function buildRelease(
  dir: string,
  version: string,
  options: { broken?: boolean } = {},
): Promise<string> {
  const src = await mkdtemp(join(tmpdir(), `atomkit-demo-src-${version}-`));
  try {
    await writeFile(join(src, "server.cjs"), SERVER_SOURCE);
    await writeFile(join(src, "VERSION"), `${version}\n`);
    if (options.broken) await writeFile(join(src, "BROKEN"), "health answers 500\n");
    await mkdir(dir, { recursive: true });
    const file = join(dir, `app-${version}.tar.gz`);
    await create({ gzip: true, file, cwd: src, portable: true }, [
      "server.cjs",
      "VERSION",
      ...(options.broken ? ["BROKEN"] : []),
    ]);
    return file;
  } finally {
    await rm(src, { recursive: true, force: true });
  }
}
