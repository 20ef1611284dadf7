import { existsSync, readFileSync } from "node:fs";

/**
 * Settings of the real test services (sshd, dockerd) started by the project's test scripts: the
 * `KEY=VALUE` lines of `$ATOMKIT_TESTBED_DIR/{sshd,dockerd}.env`, where `ATOMKIT_*` in the environment win.
 */
export function testbedEnv(file: "sshd.env" | "dockerd.env" | "postgres.env"): Record<string, string> {
  const base = process.env.ATOMKIT_TESTBED_DIR ?? "/tmp/atomkit-testbed";
  const out: Record<string, string> = {};
  const path = `${base}/${file}`;
  if (existsSync(path)) {
    for (const line of readFileSync(path, "utf8").split("\n")) {
      const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
      if (m?.[1]) out[m[1]] = (m[2] ?? "").replace(/^"(.*)"$/, "$1");
    }
  }
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith("ATOMKIT_") && v) out[k] = v;
  return out;
}

/**
 * Whether a suite that needs a real service may skip. Off CI a missing service skips the suite with a
 * loud reason; under `CI=true` it must run, so a missing service fails instead.
 */
export function serviceMissing(service: string, available: boolean, howToStart: string): boolean {
  if (available) return false;
  const message = `${service} is not available: ${howToStart}`;
  if (process.env.CI === "true" || process.env.CI === "1") throw new Error(`CI=true and ${message}`);
  console.warn(`\n!!! SKIPPING ${service} tests: ${message}\n`);
  return true;
}
