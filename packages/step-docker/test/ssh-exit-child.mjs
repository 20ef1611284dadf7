// One observe over the SSH transport, without closing anything: the process must finish the call
// (the link is held while a request is in flight) and then exit by itself (it is not held when idle).
import { localHost, validateParams } from "@atomkit/core";
import { stopContainer } from "../dist/index.js";

const step = stopContainer({ docker: JSON.parse(process.env.CONN), name: "atk-no-such-container" });
const { value } = await validateParams(step);
const ctx = { host: localHost(), signal: new AbortController().signal, log: () => {}, runId: "x", step: "x" };
console.log(JSON.stringify(await step.definition.observe(ctx, value)));
