import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitepress";
import { includedSources, repoLinks } from "./repo-links.mts";

const site = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const repo = resolve(site, "..");
const repoUrl = "https://github.com/atomkit/atomkit";

const packages = [
  "core",
  "cli",
  "step-fs",
  "step-symlink",
  "step-process",
  "step-ssh",
  "step-docker",
  "store-postgres",
  "testkit",
];

export default defineConfig({
  title: "Atomkit",
  description: "Deploys as atoms: ordered steps, each undone and verified on failure",
  // a dead internal link fails the build (the package's test); never set ignoreDeadLinks
  srcExclude: ["node_modules/**"],
  markdown: {
    // the READMEs are written for GitHub: their relative links point at repo paths
    config: (md) => repoLinks(md, { site, repo, repoUrl, pages: includedSources(site, repo) }),
  },
  themeConfig: {
    nav: [
      { text: "Guide", link: "/guide/getting-started" },
      { text: "CLI", link: "/cli-reference" },
      { text: "Packages", link: "/packages/core" },
    ],
    sidebar: [
      {
        text: "Guide",
        items: [
          { text: "Getting started", link: "/guide/getting-started" },
          { text: "Concepts", link: "/guide/concepts" },
          { text: "Coming from Capistrano, Kamal, Ansible, shipit", link: "/guide/coming-from" },
          { text: "Writing a step kind", link: "/guide/writing-a-step-kind" },
        ],
      },
      { text: "Reference", items: [{ text: "CLI", link: "/cli-reference" }] },
      {
        text: "Packages",
        items: packages.map((p) => ({ text: `@atomkit/${p}`, link: `/packages/${p}` })),
      },
      { text: "Examples", items: [{ text: "A step kind: step-kv", link: "/examples/step-kv" }] },
    ],
    search: { provider: "local" },
    socialLinks: [{ icon: "github", link: repoUrl }],
    outline: [2, 3],
  },
});
