import { spawn } from "node:child_process";
import { join } from "node:path";
import { onTestFinished } from "vitest";

const DEMO = join(__dirname, "../dist/index.js");
/**
 * Runs the demo as a user would and waits for it to end, however long a loaded box takes (no time
 * limit of its own: a hang is the test's timeout to report, and the demo is killed when the test ends).
 */
export const demo = (args: string[]) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [DEMO, ...args], { env: { ...process.env, NO_COLOR: "1" } });
    onTestFinished(() => {
      child.kill("SIGKILL");
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
