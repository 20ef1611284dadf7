// The testbed's real sshd (scripts/testbed/sshd.sh), for running fs.untar over SSH. @atomkit/step-ssh
// devDepends on this package, so this package cannot depend on it back (a cycle turbo refuses): its
// source is imported by path, for tests only.
import { existsSync } from "node:fs";
import type { Host } from "@atomkit/core";
import { serviceMissing, testbedEnv } from "@atomkit/testkit";
import { type SshHost, sshHost } from "../../step-ssh/src/index";

const env = testbedEnv("sshd.env");
export const sshPorts = (env.ATOMKIT_SSH_PORTS ?? env.ATOMKIT_SSH_PORT ?? "")
  .split(/\s+/)
  .filter(Boolean)
  .map(Number);

/** True when the ssh suites must skip (off CI, no sshd); throws under CI=true. */
export const noSshd = serviceMissing(
  "sshd",
  sshPorts.length > 0 &&
    existsSync(env.ATOMKIT_SSH_KEY ?? "") &&
    existsSync(env.ATOMKIT_SSH_KNOWN_HOSTS ?? ""),
  "run `bash scripts/testbed/sshd.sh start 2222 2223 2224 2225` (as root)",
);

/** An sshHost on a testbed port (sshd runs on this machine: a local temp dir is a directory on the host). */
export function testSshHost(port = sshPorts[0] ?? 2222): SshHost {
  return sshHost({
    host: env.ATOMKIT_SSH_HOST ?? "127.0.0.1",
    port,
    username: env.ATOMKIT_SSH_USER ?? "root",
    privateKeyPath: env.ATOMKIT_SSH_KEY ?? "",
    knownHosts: env.ATOMKIT_SSH_KNOWN_HOSTS ?? "",
  });
}

/** `ssh` with the sandbox's stateDir (a copy: steps and test wrappers spread hosts). */
export const overSsh = (ssh: SshHost, local: Host): Host => ({ ...ssh, stateDir: local.stateDir });
