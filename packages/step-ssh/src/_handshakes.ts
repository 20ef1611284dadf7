import { HostError } from "@atomkit/core";

/**
 * SSH handshakes in progress at once in this process, over every host. A handshake is the costly part
 * of a connection (key exchange, host key and user key signatures) on both ends: a fleet of hundreds
 * opening all at once stalls the controller's event loop for seconds and meets servers' `MaxStartups`
 * (10 unauthenticated connections by default) where hosts share an address (a bastion, a NAT).
 * Waiting for a slot is not part of `readyTimeoutMs`. Change it with `setSshHandshakeLimit`.
 */
export const DEFAULT_HANDSHAKE_LIMIT = 16;

class Slots {
  private used = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(public limit: number) {}
  get active(): number {
    return this.used;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.used >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.used++;
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
  /** Hands the slot to the next waiter, or frees it; also called when the limit is raised. */
  private release(): void {
    const next = this.used <= this.limit ? this.waiting.shift() : undefined;
    if (next) next();
    else this.used--;
  }
  wake(): void {
    while (this.used < this.limit && this.waiting.length) {
      this.used++;
      this.waiting.shift()!();
    }
  }
}

/** The process-wide handshake slots, shared by every sshHost. */
export const handshakes = new Slots(DEFAULT_HANDSHAKE_LIMIT);

/**
 * Sets how many SSH handshakes this process runs at once, over every sshHost (default 16); returns
 * the previous limit. Connections already open are not affected; queued handshakes wait for a slot.
 */
export function setSshHandshakeLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1) {
    throw new HostError("OTHER", "invalid SSH handshake limit", {
      expected: "a whole number of at least 1",
      found: limit,
      hint: `the default is ${DEFAULT_HANDSHAKE_LIMIT}`,
    });
  }
  const previous = handshakes.limit;
  handshakes.limit = limit;
  handshakes.wake();
  return previous;
}

/** Handshakes running now (for tests and benchmarks). */
export function sshHandshakesActive(): number {
  return handshakes.active;
}
