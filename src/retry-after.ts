/**
 * The `Retry-After` header, as both remotes (WeChat, Vonage) may send it with a 429 or a 503. A leaf
 * module: the WeChat and the Vonage clients both read the header with it, and neither may import
 * the other.
 */

/**
 * `Retry-After` is whole (or decimal) seconds or an HTTP date; this gives milliseconds from `nowMs`.
 * Anything else counts as absent, and a date in the past means "now".
 */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  if (!/[a-z]/i.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}
