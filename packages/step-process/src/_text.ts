// How this package shows command lines and masks env values in the messages it writes.
import { Redactor } from "@atomkit/core/kit";

/**
 * The kit's Redactor over the given values, for text this package writes into errors and logs (log
 * tails, command lines). The engine masks declared secrets too; this also covers env values the
 * caller did not mark.
 */
export function masker(values: Iterable<string>): (text: string) => string {
  const redactor = new Redactor();
  // every env value is masked, not only secrets: a short one (`80`, `1`) would blank out unrelated words
  redactor.addValues([...values].filter((v) => v.length >= 4));
  return (text) => redactor.text(text);
}

/** `node /srv/app/server.js --port 8080`, shortened for titles and messages. */
export function showArgv(argv: readonly string[], max = 120): string {
  const text = argv.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : JSON.stringify(w))).join(" ");
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
