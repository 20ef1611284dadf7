import { TrailError } from "../errors";
import type { TrailRecord } from "../trail";

/**
 * Longest record a trail writes or reads. A state is a few facts, not data: a longer record is refused
 * when written and reported as corrupt when read, so one huge record cannot cost every command its memory.
 */
export const MAX_RECORD_BYTES = 4 * 1024 * 1024;

/** Refuses a record of `bytes` over MAX_RECORD_BYTES (UTF-16 length is a lower bound of its UTF-8 size). */
export function refuseOversized(runId: string, r: TrailRecord, bytes: number): void {
  if (bytes <= MAX_RECORD_BYTES) return;
  throw new TrailError(`a ${r.t} record of run ${runId} is ${bytes} bytes`, {
    expected: `records under ${MAX_RECORD_BYTES} bytes (a state holds facts, not data)`,
    found: `${bytes} bytes${"step" in r ? ` for step "${r.step}"` : ""}`,
    hint: "make the kind's observe() return a digest instead of content",
  });
}
