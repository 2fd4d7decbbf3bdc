/**
 * Small checks and cuts on plain values that every room needs. Like errors.ts, this module is a
 * leaf: it imports nothing, so any room may import it without an arrow pointing back up.
 */

/** A plain object (not null, not an array): the shape a JSON object parses to. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** At most `max` UTF-16 units, never splitting a surrogate pair; `ellipsis` marks a cut. */
export function clipChars(text: string, max: number, ellipsis = '…'): string {
  if (text.length <= max) return text;
  let out = '';
  for (const char of text) {
    if (out.length + char.length > max - ellipsis.length) break;
    out += char;
  }
  return out + ellipsis;
}
