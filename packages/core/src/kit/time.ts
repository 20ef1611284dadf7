// Waiting: a sleep that an abort ends early, a deadline around work that may ignore its signal, and
// queues that run one key's work one at a time.
import { sleep, turns } from "../_utils";
import { fail } from "./fail";

export { sleep, turns };

/**
 * Runs `work` with a signal that aborts after `ms` or when `options.signal` aborts, and settles by
 * then even if `work` ignores its signal: at the deadline it rejects with `options.error()` (default:
 * a kit failure "<what> timed out after <ms> ms", completed by the engine inside a step); when the
 * outer signal aborts, with its reason. The timer is cleared however it ends.
 */
export async function withTimeout<T>(
  ms: number,
  work: (signal: AbortSignal) => Promise<T>,
  options: { signal?: AbortSignal | undefined; what?: string; error?: () => unknown } = {},
): Promise<T> {
  const ac = new AbortController();
  const outer = options.signal;
  let timer: NodeJS.Timeout | undefined;
  let onOuter: (() => void) | undefined;
  const deadline = new Promise<never>((_, reject) => {
    const timeout = () => {
      let error: unknown;
      try {
        error = options.error
          ? options.error()
          : fail(`${options.what ?? "the operation"} timed out after ${ms} ms`);
      } catch (thrown) {
        error = thrown;
      }
      ac.abort(error);
      reject(error);
    };
    timer = setTimeout(timeout, ms);
    onOuter = () => {
      ac.abort(outer?.reason);
      reject(outer?.reason);
    };
    if (outer?.aborted) onOuter();
    else outer?.addEventListener("abort", onOuter, { once: true });
  });
  deadline.catch(() => {});
  try {
    if (ac.signal.aborted) throw ac.signal.reason;
    return await Promise.race([work(ac.signal), deadline]);
  } finally {
    clearTimeout(timer);
    if (onOuter) outer?.removeEventListener("abort", onOuter);
  }
}
