export { setSshHandshakeLimit } from "./_handshakes";
export type { ExecCommandParams, ExecCommandState } from "./exec";
export { execCommand } from "./exec";
export type { HostKeyPolicy, SshHost, SshHostOptions } from "./ssh-host";
export { sshHost } from "./ssh-host";

import { execCommand } from "./exec";

/** The step kinds of this package, for `registerSteps`. */
export const steps = [execCommand];
