// The serialisable form of an error, as the trail and step records hold it.
import { messageOf } from "./_utils";
import { isAtomError } from "./atom-error";
import type { Json } from "./types";

/** The serialisable form of an error, as stored in the trail and in step records. */
export interface ErrorInfo {
  name: string;
  code?: string;
  message: string;
  /** The message without context, expected/found and hint (every AtomError): what one-line renderers show. */
  shortMessage?: string;
  /** What the step expected and what it found, as JSON (clipped when large). */
  expected?: Json;
  found?: Json;
  stack?: string;
  step?: string;
  phase?: string;
  hint?: string;
  cause?: ErrorInfo;
}

/** An error as JSON for the trail: message, code, context and up to four causes deep. */
export function toErrorInfo(error: unknown, depth = 0): ErrorInfo {
  if (!(error instanceof Error)) return { name: "Error", message: messageOf(error) };
  const info: ErrorInfo = { name: error.name, message: error.message };
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" || typeof code === "number") info.code = String(code);
  if (error.stack) info.stack = error.stack;
  if (isAtomError(error)) {
    if (error.step) info.step = error.step;
    if (error.phase) info.phase = error.phase;
    if (error.hint) info.hint = error.hint;
    info.shortMessage = error.shortMessage;
    if (error.expected !== undefined) info.expected = asJson(error.expected);
    if (error.found !== undefined) info.found = asJson(error.found);
  }
  if (error.cause !== undefined && depth < 4) info.cause = toErrorInfo(error.cause, depth + 1);
  return info;
}

/** A detail value as JSON for the trail: as it is when small, else its first 4,000 characters as text. */
function asJson(value: unknown): Json {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    // cyclic or BigInt: only its text form is recordable
  }
  if (text === undefined) return String(value);
  return text.length <= 4000 ? (JSON.parse(text) as Json) : `${text.slice(0, 4000)}…`;
}
