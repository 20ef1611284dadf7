// Temporary names beside a target, for atomic replaces: write or link to the temporary name, then
// rename(2) it over the target (a reader sees the old or the new, never a mix). Every temporary name
// of a target starts with its `tempPrefix`, so a kind's `cleanup` finds what a crash left.
import { randomBytes } from "node:crypto";
import { posix } from "node:path";

/**
 * The first `bytes` bytes of `text` in UTF-8, cut before a character that would not fit whole (never
 * half a character), so a derived name stays under NAME_MAX (255 bytes).
 */
export function clip(text: string, bytes: number): string {
  const buf = Buffer.from(text);
  if (buf.length <= bytes) return text;
  let end = Math.max(0, bytes);
  while (end > 0 && (buf[end]! & 0xc0) === 0x80) end--; // a continuation byte: back to the character's start
  return buf.subarray(0, end).toString("utf8");
}

/**
 * The prefix of every temporary name beside `path`: `.<name>.atomkit-`, the name clipped to 180 bytes
 * so that the prefix and a random suffix stay a legal file name however long the target's name is.
 */
export const tempPrefix = (path: string): string => `.${clip(posix.basename(path), 180)}.atomkit-`;

/** A fresh temporary name beside `path` (same directory, so renaming it onto `path` is atomic). */
export function tempBeside(path: string): string {
  return posix.join(posix.dirname(path), `${tempPrefix(path)}${randomBytes(4).toString("hex")}`);
}
