// The site includes the repo's Markdown (package READMEs, docs/, examples/) with `<!--@include: ...-->`.
// Those files are written for GitHub, so their relative links point at repo paths. This rewrites each
// such link: to the site page that includes the target when there is one (then VitePress checks it like
// any internal link), else to the file on GitHub. The READMEs stay as they are.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, posix, relative } from "node:path";
import type { MarkdownRenderer } from "vitepress";

const INCLUDE = /<!--\s*@include:\s*([^\s]+?)\s*-->/g;

/** Every page of the site that includes repo files: page (relative to the site) → included repo paths. */
export function includedSources(site: string, repo: string): Map<string, string[]> {
  const pages = new Map<string, string[]>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name.startsWith(".") || e.name === "node_modules") continue;
      const file = join(dir, e.name);
      if (e.isDirectory()) walk(file);
      else if (e.name.endsWith(".md")) {
        const sources = [...readFileSync(file, "utf8").matchAll(INCLUDE)].map((m) =>
          toPosix(relative(repo, join(dirname(file), m[1].replace(/[#{].*$/, "")))),
        );
        if (sources.length) pages.set(toPosix(relative(site, file)), sources);
      }
    }
  };
  walk(site);
  return pages;
}

const toPosix = (p: string) => p.split("\\").join("/");

interface Options {
  site: string;
  repo: string;
  repoUrl: string;
  pages: Map<string, string[]>;
}

export function repoLinks(md: MarkdownRenderer, { repo, repoUrl, pages }: Options): void {
  // repo path of an included file, or of its directory (a README stands for its folder) → site page
  const pageOf = new Map<string, string>();
  for (const [page, sources] of pages) {
    for (const source of sources) {
      pageOf.set(source, `/${page}`);
      if (posix.basename(source) === "README.md") pageOf.set(posix.dirname(source), `/${page}`);
    }
  }
  md.core.ruler.push("atomkit_repo_links", (state) => {
    const sources = pages.get(state.env?.relativePath ?? "");
    // a page that includes one repo file: its links are relative to that file
    const source = sources?.length === 1 ? sources[0] : undefined;
    if (!source) return;
    const from = posix.dirname(source);
    for (const block of state.tokens) {
      for (const token of block.children ?? []) {
        if (token.type !== "link_open") continue;
        const href = token.attrGet("href");
        if (!href || /^([a-z][a-z0-9+.-]*:|#|\/)/i.test(href)) continue;
        const [path, hash] = href.split("#", 2);
        const target = posix.normalize(posix.join(from, path)).replace(/\/$/, "");
        // outside the repo, or a path it does not have: left as is, so the dead link check fails the build
        if (target.startsWith("..") || !existsSync(join(repo, target))) continue;
        const page = pageOf.get(target);
        const anchor = hash ? `#${hash}` : "";
        token.attrSet("href", page ? `${page}${anchor}` : `${repoUrl}/blob/main/${target}${anchor}`);
      }
    }
  });
}
