import { join } from "node:path";
import { runNode } from "./_cli-project";

const DEMO = join(__dirname, "../dist/index.js");

/** Runs the demo as a user would (`npm run demo -- …`) and waits for it to end. */
export const demo = async (args: string[]) => {
  const { code, stdout, stderr } = await runNode(DEMO, args, { env: { NO_COLOR: "1" } });
  return { status: code, stdout, stderr };
};
