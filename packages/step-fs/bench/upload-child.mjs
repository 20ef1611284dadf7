// One fs.upload in its own process, so its peak RSS (ru_maxrss) is the upload's alone.
import { atom, localHost, run } from "@atomkit/core";
import { uploadFile } from "../dist/index.js";

const [source, path, stateDir] = process.argv.slice(2);
const idleRssMb = process.resourceUsage().maxRSS / 1024;
const t0 = process.hrtime.bigint();
const result = await run(atom("upload", { steps: [uploadFile({ source, path })] }), {
  host: localHost({ stateDir }),
  lock: false,
});
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
if (result.status !== "committed") throw result.error;
process.stdout.write(
  `${JSON.stringify({ ms, maxRssMb: process.resourceUsage().maxRSS / 1024, idleRssMb })}\n`,
);
