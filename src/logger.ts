/**
 * Structured logs (pino) that never carry a secret.
 *
 * Two layers, because one is not enough: `redact` removes secret-bearing *keys* wherever they
 * appear in a log object, and `scrubSecrets` rewrites secret-bearing *text* (an access token
 * inside a URL, a bearer token inside an error message) in every string that is logged.
 */
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

const SECRET_KEYS = [
  'appSecret',
  'app_secret',
  'secret',
  'privateKey',
  'private_key',
  'privateKeyPem',
  'accessToken',
  'access_token',
  'token',
  'authorization',
  'Authorization',
  'signatureSecret',
  'previousSignatureSecret',
  'password',
];

const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((key) => `*.${key}`),
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'config.headers.Authorization',
];

/** Rewrites secret-bearing text: `access_token=…` query values and JSON fields, bearer tokens, PEM blocks. */
export function scrubSecrets(text: string): string {
  return text
    .replace(/(access_token=)[^&#\s"'<>]+/gi, '$1[REDACTED]')
    .replace(/("access_token"\s*:\s*")[^"]*/gi, '$1[REDACTED]')
    .replace(/(secret=)[^&#\s"'<>]+/gi, '$1[REDACTED]')
    .replace(/(Bearer\s+)[A-Za-z0-9\-_.~+/]+=*/g, '$1[REDACTED]')
    .replace(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g, '[REDACTED PRIVATE KEY]');
}

function scrubValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return scrubSecrets(value);
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    return { type: value.name, message: scrubSecrets(value.message), stack: value.stack ? scrubSecrets(value.stack) : undefined };
  }
  if (Array.isArray(value)) return value.map((item) => scrubValue(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = scrubValue(item, depth + 1);
  return out;
}

export function createLogger(options: { level: string; destination?: DestinationStream; name?: string }): Logger {
  return pino(
    {
      level: options.level,
      name: options.name ?? 'wechat-conversation-bridge',
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      serializers: { err: (err: unknown) => scrubValue(err, 0) },
      hooks: {
        // Every argument of every log call passes through here: strings and nested objects alike.
        logMethod(args, method) {
          const scrubbed = args.map((arg) => scrubValue(arg, 0)) as Parameters<typeof method>;
          method.apply(this, scrubbed);
        },
      },
    },
    options.destination,
  );
}
