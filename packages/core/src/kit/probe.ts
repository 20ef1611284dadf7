// One probe through `host.connect`, bounded by its own timeout and the step's signal: HTTP (a GET over
// HTTP/1.0, judged by `expect`) and TCP (a connection opens). `guarded` runs a provider's own probe
// under the same rules.

import { show } from "../fields";
import type { Host } from "../host";
import { type HttpCheckParams, statusMatches, type TcpCheckParams } from "./health-check";

/** The outcome of one probe: `found` says what was seen (`HTTP 503`), for the "found" of an error. */
export interface ProbeResult {
  ok: boolean;
  found: string;
  /** The probe got no answer within its own timeout (`found` then says so). */
  timedOut?: boolean;
}

/** For one probe: the host it goes through, the most it may take, and the step's signal. */
export interface ProbeOptions {
  host: Host;
  timeoutMs: number;
  /** Aborting it makes the probe throw the signal's reason (a timeout of the probe itself is a result). */
  signal?: AbortSignal | undefined;
}

/** One TCP probe through `host.connect`: healthy once the connection opens (it is closed at once). */
export function probeTcp(check: TcpCheckParams, o: ProbeOptions): Promise<ProbeResult> {
  const where = `${check.hostname}:${check.port}`;
  return guarded(
    o,
    () => `no connection to ${where} within ${o.timeoutMs} ms`,
    async (signal) => {
      const socket = await connect(o.host, check, signal);
      socket.destroy();
      return { ok: true, found: `a connection to ${where}` };
    },
  );
}

/** Answers kept for judging: enough for the status line, headers and the start of the body. */
const MAX_ANSWER = 64 * 1024;

/** One HTTP probe through `host.connect`: `GET path` over HTTP/1.0, judged by `expect`. */
export function probeHttp(check: HttpCheckParams, o: ProbeOptions): Promise<ProbeResult> {
  const where = `${check.hostname}:${check.port}`;
  let connected = false;
  return guarded(
    o,
    () =>
      connected
        ? `no HTTP answer from ${where} within ${o.timeoutMs} ms`
        : `no connection to ${where} within ${o.timeoutMs} ms`,
    async (signal) => {
      const socket = await connect(o.host, check, signal);
      connected = true;
      try {
        const answer = await new Promise<Buffer>((resolve, reject) => {
          const chunks: Buffer[] = [];
          let size = 0;
          const done = () => resolve(Buffer.concat(chunks));
          // a server that sent its status line and then stalls is judged on what it sent
          signal.addEventListener("abort", () => (size ? done() : reject(signal.reason)), { once: true });
          socket.on("data", (chunk: Buffer) => {
            chunks.push(chunk);
            size += chunk.length;
            if (size > MAX_ANSWER || complete(Buffer.concat(chunks))) done();
          });
          socket.once("end", done);
          socket.once("close", done);
          socket.once("error", (error) => (size ? done() : reject(error)));
          socket.write(
            `GET ${check.path} HTTP/1.0\r\nHost: ${where}\r\nUser-Agent: atomkit-health\r\nConnection: close\r\n\r\n`,
          );
        });
        return judge(answer.toString("utf8"), check);
      } finally {
        socket.destroy();
      }
    },
  );
}

/** Whether an answer with a Content-Length has all of it (a server may keep the connection open). */
function complete(answer: Buffer): boolean {
  const end = answer.indexOf("\r\n\r\n");
  if (end < 0) return false;
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(answer.subarray(0, end).toString("latin1"))?.[1];
  return length !== undefined && answer.length - end - 4 >= Number(length);
}

function judge(text: string, check: HttpCheckParams): ProbeResult {
  const status = Number(/^HTTP\/\d(?:\.\d)? (\d{3})/.exec(text)?.[1]);
  if (!status) {
    return {
      ok: false,
      found: text
        ? `not an HTTP answer: ${show(text.slice(0, 80))}`
        : "the connection closed without an answer",
    };
  }
  if (!statusMatches(status, check.expect.status)) return { ok: false, found: `HTTP ${status}` };
  const end = text.indexOf("\r\n\r\n");
  const body = end < 0 ? "" : text.slice(end + 4);
  const want = check.expect.body;
  if (want !== undefined && !body.includes(want)) {
    return {
      ok: false,
      found: `HTTP ${status} without ${show(want)} in the body: ${show(body.slice(0, 120))}`,
    };
  }
  return { ok: true, found: `HTTP ${status}` };
}

/** `host.connect` that gives up when `signal` aborts, closing a connection that opens too late. */
function connect(host: Host, to: { port: number; hostname: string }, signal: AbortSignal) {
  const opening = host.connect({ port: to.port, hostname: to.hostname }, { signal });
  return new Promise<Awaited<typeof opening>>((resolve, reject) => {
    // not every Host stops opening on abort (an SSH channel request cannot be withdrawn)
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    opening.then(
      (socket) => {
        signal.removeEventListener("abort", onAbort);
        if (signal.aborted) socket.destroy();
        else resolve(socket);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/**
 * Runs one probe with its own signal: aborted after `o.timeoutMs` (the probe then fails with
 * `timedOut()`) or when `o.signal` aborts (the probe then throws its reason). Any other error is a
 * failed probe, its first line the "found". A signal per probe also keeps listeners from piling up
 * on the step's signal over hundreds of probes.
 */
export async function guarded(
  o: ProbeOptions,
  timedOut: () => string,
  run: (signal: AbortSignal) => Promise<ProbeResult>,
): Promise<ProbeResult> {
  o.signal?.throwIfAborted();
  const ac = new AbortController();
  const onAbort = () => ac.abort(o.signal?.reason);
  o.signal?.addEventListener("abort", onAbort, { once: true });
  const timer = setTimeout(() => ac.abort(new Error(timedOut())), o.timeoutMs);
  try {
    return await run(ac.signal);
  } catch (error) {
    if (o.signal?.aborted) throw o.signal.reason;
    if (ac.signal.aborted) return { ok: false, found: timedOut(), timedOut: true };
    return { ok: false, found: firstLine(error) };
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener("abort", onAbort);
  }
}

/** `promise`, or the signal's reason once it aborts: a provider's probe may not stop when asked. */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    void promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n")[0] || "failed";
}
