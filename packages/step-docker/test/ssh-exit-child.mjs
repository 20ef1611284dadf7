// One observe on an sshHost, then the host is closed: the process must finish the call and then exit
// by itself (the daemon's keep-alive channels end with the host's connection).
import { validateParams } from "@atomkit/core";
import { sshHost } from "@atomkit/step-ssh";
import { stopContainer } from "../dist/index.js";

const host = sshHost(JSON.parse(process.env.HOST_OPTIONS));
const step = stopContainer({ docker: { socketPath: process.env.SOCKET }, name: "atk-no-such-container" });
const { value } = await validateParams(step);
const ctx = {
  host,
  signal: new AbortController().signal,
  log: () => {},
  runId: "x",
  step: "x",
  redact: (v) => v,
};
console.log(JSON.stringify(await step.definition.observe(ctx, value)));
await host.close();
