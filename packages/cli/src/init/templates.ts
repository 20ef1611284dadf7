// What `atomkit init` writes: a deploy file for the chosen shape and a tiny app it can deploy at once,
// so the first `atomkit run release --var version=1` commits before anything is the user's own.

export type Shape =
  | { kind: "local" }
  | { kind: "ssh"; user: string; host: string; port: number }
  | { kind: "docker" };

const RELEASE_STEPS = `          // shared/ outlives releases (uploads, sockets, .env); created once, then unchanged
          makeDir({ path: \`\${base}/shared\` }, { name: "shared" }),
          makeDir({ path: \`\${base}/releases/\${version}\` }, { name: "release-dir" }),
          uploadFile({ source: "app/server.mjs", path: \`\${base}/releases/\${version}/server.mjs\` }, { name: "upload" }),
          // stops what serves now; undo starts it again exactly as it ran (argv, dir, environment)
          stopProcess({ pidFile: \`\${base}/app.pid\`, health }, { name: "stop" }),
          swapSymlink({ link: \`\${base}/current\`, target: \`\${base}/releases/\${version}\` }, { name: "link" }),
          startProcess(
            {
              command: ["node", "server.mjs"],
              cwd: \`\${base}/current\`,
              env: { PORT: port, APP_VERSION: version },
              pidFile: \`\${base}/app.pid\`,
              logFile: \`\${base}/app.log\`,
              health,
            },
            { name: "start" },
          ),`;

export function deployFile(shape: Shape): string {
  if (shape.kind === "docker") return DOCKER;
  const ssh = shape.kind === "ssh";
  const hostLine = ssh
    ? `    // the key and known_hosts: ATOMKIT_SSH_KEY / ATOMKIT_SSH_KNOWN_HOSTS, else ~/.ssh (host keys are checked)
    web: () =>
      sshHost({
        name: "web", // the name the trail records: keep it stable
        host: ${JSON.stringify(shape.host)},
        port: ${shape.port},
        username: ${JSON.stringify(shape.user)},
        privateKeyPath: process.env.ATOMKIT_SSH_KEY ?? join(homedir(), ".ssh/id_ed25519"),
        ...(process.env.ATOMKIT_SSH_KNOWN_HOSTS ? { knownHosts: process.env.ATOMKIT_SSH_KNOWN_HOSTS } : {}),
      }),`
    : `    // this machine; its lease and backups live in .atomkit/host
    local: localHost({ stateDir: resolve(".atomkit/host") }),`;
  const base = ssh
    ? `base: { default: "/srv/app", description: "where the app lives on the host" },`
    : `base: { default: resolve("deploy"), description: "where the app lives (releases/, current, shared/)" },`;
  return `// The deploy file, made by \`atomkit init${ssh ? ` --ssh ${shape.user}@${shape.host}:${shape.port}` : " --local"}\`. Edit freely.
//   npx atomkit plan release --var version=1   observe every step, change nothing
//   npx atomkit run release --var version=1    deploy; a failure rolls every step back, verified
//   npx atomkit rollback release               the previous release serves again
//   npx atomkit report --last                  an HTML report of the last run
${ssh ? `import { homedir } from "node:os";\nimport { join } from "node:path";\n` : `import { resolve } from "node:path";\n`}import { atom${ssh ? "" : ", localHost"} } from "@atomkit/core";
import { defineAtom, defineConfig } from "@atomkit/cli";
import { makeDir, uploadFile } from "@atomkit/step-fs";
import { startProcess, stopProcess } from "@atomkit/step-process";
${ssh ? `import { sshHost } from "@atomkit/step-ssh";\n` : ""}import { swapSymlink } from "@atomkit/step-symlink";

export default defineConfig({
  hosts: {
${hostLine}
  },
  atoms: {
    release: defineAtom({
      description: "upload app/ as a release, point current at it, restart, check health",
      vars: {
        version: { description: "the release name, e.g. 1 or a git sha" },
        port: { default: "3000", description: "the port the app listens on" },
        ${base}
      },
      atom: ({ version, port, base }) => {
        const health = { http: { port: Number(port), path: "/health" }, timeoutMs: 30_000 };
        return atom("release", {
          steps: [
${RELEASE_STEPS}
          ],
        });
      },
    }),
  },
  // undo and recover refuse trail records that would change anything outside these
  roots: [${ssh ? `"/srv/app"` : `resolve("deploy")`}],
});
`;
}

const DOCKER = `// The deploy file, made by \`atomkit init --docker\`. Edit freely.
//   npx atomkit plan release --var version=1   observe every step, change nothing
//   npx atomkit run release --var version=1    deploy; a failed health check swaps the old container back
//   npx atomkit rollback release               the previous release serves again
//   npx atomkit report --last                  an HTML report of the last run
import { resolve } from "node:path";
import { localHost } from "@atomkit/core";
import { atom } from "@atomkit/core";
import { defineAtom, defineConfig } from "@atomkit/cli";
import { ensureImage, swapContainer } from "@atomkit/step-docker";

export default defineConfig({
  hosts: {
    // the Docker daemon on this machine (its socket); for a remote one see @atomkit/step-docker's README
    local: localHost({ stateDir: resolve(".atomkit/host") }),
  },
  atoms: {
    release: defineAtom({
      description: "run image:version as the container web, check its health, keep the old one to swap back",
      vars: {
        version: { description: "the image tag to serve, e.g. 1 or a git sha" },
        image: { default: "myapp", description: "the image name (built or pulled beforehand, or loaded from a tar)" },
        port: { default: "3000", description: "the port the app listens on (host networking)" },
      },
      atom: ({ version, image, port }) =>
        atom("release", {
          steps: [
            ensureImage({ image: \`\${image}:\${version}\` }, { name: "image" }),
            swapContainer(
              {
                name: "web",
                image: \`\${image}:\${version}\`,
                env: { PORT: port },
                health: { http: { port: Number(port), path: "/health" }, timeoutMs: 30_000 },
              },
              { name: "swap" },
            ),
          ],
        }),
    }),
  },
});
`;

export const SERVER = `// A stand-in app made by \`atomkit init\`: replace it with yours (and the upload step with fs.untar of
// your build). It answers GET /health for the health check and GET / with its version.
import { createServer } from "node:http";

const port = Number(process.env.PORT ?? 3000);
const version = process.env.APP_VERSION ?? "dev";
createServer((req, res) => {
  if (req.url === "/health") return res.end("ok\\n");
  res.end(\`hello from \${version}\\n\`);
}).listen(port, "127.0.0.1", () => console.log(\`listening on 127.0.0.1:\${port} (version \${version})\`));
`;

export const PACKAGES = {
  docker: ["@atomkit/core", "@atomkit/cli", "@atomkit/step-docker"],
  local: [
    "@atomkit/core",
    "@atomkit/cli",
    "@atomkit/step-fs",
    "@atomkit/step-process",
    "@atomkit/step-symlink",
  ],
  ssh: [
    "@atomkit/core",
    "@atomkit/cli",
    "@atomkit/step-fs",
    "@atomkit/step-process",
    "@atomkit/step-symlink",
    "@atomkit/step-ssh",
  ],
};
