#!/usr/bin/env node
declare const __VERSION__: string | undefined;

// `atomkit --version` answers before the rest of the CLI (the deploy file loader, every command, the
// report renderer) is loaded: scripts call it to check what is installed, and it should cost no more
// than starting node.
const args = process.argv.slice(2);
if (args.length === 1 && args[0] === "--version") {
  process.stdout.write(`${typeof __VERSION__ === "string" ? __VERSION__ : "0.0.0"}\n`);
} else {
  const { main } = await import("./main");
  // A closed pipe (`atomkit run … | head`, a dropped SSH session running tee) must not kill a deploy
  // half-way: output is best effort, the run goes on to its end (or its rollback).
  for (const stream of [process.stdout, process.stderr]) stream.on("error", () => {});
  process.exitCode = await main(args, {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
  });
}

export {};
