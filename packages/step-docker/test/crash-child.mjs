// Runs one swap whose new container never becomes healthy, journaled to a file trail, and prints the
// step's progress; the test kills this process with SIGKILL in the middle of it.
import { atom, fileTrail, localHost, run } from "@atomkit/core";
import { swapContainer } from "../dist/index.js";

const { TRAIL, NAME, PORT, IMAGE, SOCKET, STATE, ORDER, HEALTH_PORT } = process.env;
const step = swapContainer({
  docker: { socketPath: SOCKET },
  name: NAME,
  image: IMAGE,
  cmd: ["sleep", "120"],
  init: true,
  stopTimeoutMs: 1000,
  order: ORDER ?? "stop-first",
  // start-first: the new container is checked on a port of its own (the old one answers on PORT)
  health: { http: { port: Number(HEALTH_PORT ?? PORT) }, timeoutMs: 120_000 },
});
await run(atom("crash", { steps: [step] }), {
  host: localHost({ stateDir: STATE }),
  trail: fileTrail({ dir: TRAIL }),
  lock: false,
  onEvent: (e) => {
    if (e.type === "step:log") console.log(e.message);
  },
});
