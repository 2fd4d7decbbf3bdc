/**
 * Plain-text rendering for the CLI: durations, times, tables, and secret scrubbing of anything
 * printed. No colours, no terminal tricks: the output is meant to be read and grepped.
 */
import { scrubSecrets } from '../logger';
import { clipChars } from '../values';

/** `0s`, `45s`, `12m 5s`, `3h 2m`, `2d 4h`: the two largest units. */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  const units: Array<[string, number]> = [
    ['d', Math.floor(seconds / 86_400)],
    ['h', Math.floor(seconds / 3600) % 24],
    ['m', Math.floor(seconds / 60) % 60],
    ['s', seconds % 60],
  ];
  const first = units.findIndex(([, value]) => value > 0);
  if (first < 0) return '0s';
  return units
    .slice(first, first + 2)
    .filter(([, value]) => value > 0)
    .map(([unit, value]) => `${value}${unit}`)
    .join(' ');
}

/** `2026-01-02 10:11:12Z`: UTC, to the second. */
export function formatTime(epochMs: number): string {
  return new Date(epochMs).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
}

/** One line, at most `max` characters (control characters and line breaks become spaces). */
export function oneLine(text: string, max = Number.POSITIVE_INFINITY): string {
  // eslint-disable-next-line no-control-regex -- the control characters are what this replaces
  const flat = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return clipChars(flat, max);
}

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const render = (cells: readonly string[]) =>
    cells.map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ').trimEnd();
  return [render(header), ...rows.map(render)].join('\n');
}

/**
 * Removes secrets from text about to be printed: what the logger scrubs (access tokens, bearer
 * tokens, PEM blocks) plus the literal values of the secret settings and a DATABASE_URL password.
 */
export function redactSecrets(text: string, env: NodeJS.ProcessEnv): string {
  return scrubSecrets(text, [
    env.WECHAT_APP_SECRET,
    env.VONAGE_SIGNATURE_SECRET,
    env.VONAGE_PREVIOUS_SIGNATURE_SECRET,
    env.VONAGE_PRIVATE_KEY,
    ...databasePassword(env.DATABASE_URL),
  ]);
}

/** A `postgres://user:password@host/db` password, as written and decoded. */
function databasePassword(url: string | undefined): string[] {
  if (!url) return [];
  try {
    const password = new URL(url).password;
    return password === '' ? [] : [password, decodeURIComponent(password)];
  } catch {
    return [];
  }
}
