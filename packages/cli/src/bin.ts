#!/usr/bin/env node
import { main } from "./main";

// A closed pipe (`atomkit run … | head`, a dropped SSH session running tee) must not kill a deploy
// half-way: output is best effort, the run goes on to its end (or its rollback).
for (const stream of [process.stdout, process.stderr]) stream.on("error", () => {});

const code = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
});
process.exitCode = code;
