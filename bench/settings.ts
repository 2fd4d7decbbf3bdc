/** What every bench entry point (`run.ts`, `saturation-only.ts`) reads alike: settings from the environment, the servers' names. */

/** `name` from the environment as a number ≥ `min`; `fallback` when unset or blank. */
export function numberSetting(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) throw new Error(`${name}=${raw} is not a number ≥ ${min}`);
  return value;
}

/** The servers measured side by side, as the report names them. */
export const SERVER_NAMES = { http: 'bare node:http', express: 'bare Express 5', webot: 'node-webot/wechat 2.1.0', bridge: 'bridge (SQLite)' };
