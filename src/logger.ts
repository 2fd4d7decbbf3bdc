/**
 * Structured logs (pino) that never carry a secret.
 *
 * Written synchronously to stdout: a line is out of the process before the call returns, so the
 * last lines before a crash or a SIGKILL (the "stored and acknowledged" of a message WeChat was just
 * told `success` about, the reason for a fatal exit) are never left in a buffer that dies with it.
 * pino's asynchronous mode would buffer lines whenever the reader of stdout is slower than the
 * bridge. The cost is one write(2) per line, and a reader that stops reading blocks the bridge.
 *
 * Two layers, because one is not enough: `redact` removes secret-bearing *keys* wherever they
 * appear in a log object, and `scrubSecrets` rewrites secret-bearing *text* (an access token
 * inside a URL, a bearer token inside an error message) in every string that is logged.
 */
import pino, { type DestinationStream, type Logger } from 'pino';
import pinoPretty from 'pino-pretty';

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

/** Shortest literal secret value that is scrubbed: very short values would blank out ordinary words; real secrets are long. */
const MIN_KNOWN_SECRET_CHARS = 6;

/**
 * Rewrites secret-bearing text: `access_token=…` query values and JSON fields, an access token a
 * remote names in words (`access_token is …`, `access_token: …`), bearer tokens, JWTs, PEM blocks,
 * and every literal value in `knownSecrets` (the app secret, the private key…). The one scrubber of
 * the bridge: logs, stored errors, statuses and the CLI all pass through it.
 */
export function scrubSecrets(text: string, knownSecrets: readonly (string | undefined)[] = []): string {
  let out = text;
  for (const secret of knownSecrets) {
    const value = secret?.trim();
    if (value && value.length >= MIN_KNOWN_SECRET_CHARS) out = out.split(value).join('[REDACTED]');
  }
  return out
    .replace(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g, '[REDACTED PRIVATE KEY]')
    .replace(/(access_token=)[^&#\s"'<>]+/gi, '$1[REDACTED]')
    .replace(/("access_token"\s*:\s*")[^"]*/gi, '$1[REDACTED]')
    .replace(/(access_?token(?:\s+is|\s*[:=])?\s+["']?)(?!\[REDACTED\])[A-Za-z0-9\-_.~+/]{16,}=*/gi, '$1[REDACTED]')
    .replace(/(secret=)[^&#\s"'<>]+/gi, '$1[REDACTED]')
    .replace(/(Bearer\s+)[A-Za-z0-9\-_.~+/]+=*/g, '$1[REDACTED]')
    .replace(/eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, '[REDACTED JWT]');
}

/** `scrubSecrets` bound to this bridge's secret settings. */
export type SecretScrubber = (text: string) => string;

export function createSecretScrubber(knownSecrets: readonly (string | undefined)[] = []): SecretScrubber {
  const secrets = [...knownSecrets];
  return (text) => scrubSecrets(text, secrets);
}

function scrubValue(value: unknown, depth: number, scrub: SecretScrubber): unknown {
  if (typeof value === 'string') return scrub(value);
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    return { type: value.name, message: scrub(value.message), stack: value.stack ? scrub(value.stack) : undefined };
  }
  if (Array.isArray(value)) return value.map((item) => scrubValue(item, depth + 1, scrub));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = scrubValue(item, depth + 1, scrub);
  return out;
}

/** `json`: one JSON object a line (for log collectors); `pretty`: coloured lines for a person. */
export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/**
 * `LOG_FORMAT` when set; otherwise pretty for a person at a terminal (stdout is a TTY and
 * NODE_ENV is not production) and JSON for everything else (files, pipes, containers, pm2).
 */
export function chooseLogFormat(setting: LogFormat | undefined, stdoutIsTerminal: boolean, nodeEnv: string | undefined): LogFormat {
  if (setting) return setting;
  return stdoutIsTerminal && nodeEnv !== 'production' ? 'pretty' : 'json';
}

export function createLogger(options: {
  level: string;
  destination?: DestinationStream;
  name?: string;
  format?: LogFormat;
  /** Literal secret values (app secret, private key…) to scrub wherever they appear. */
  secrets?: readonly (string | undefined)[];
}): Logger {
  const scrub = createSecretScrubber(options.secrets);
  // Pretty printing formats what pino wrote, after redaction and scrubbing: it sees no secret either.
  // sync: a line logged just before a crash still reaches the terminal.
  const destination =
    options.format === 'pretty'
      ? pinoPretty({
          colorize: options.destination === undefined && process.stdout.isTTY === true,
          translateTime: 'SYS:HH:MM:ss.l',
          ignore: 'pid,hostname',
          sync: true,
          ...(options.destination ? { destination: options.destination } : {}),
        })
      : (options.destination ?? pino.destination({ dest: 1, sync: true }));
  return pino(
    {
      level: options.level,
      name: options.name ?? 'wechat-conversation-bridge',
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      serializers: { err: (err: unknown) => scrubValue(err, 0, scrub) },
      hooks: {
        // Every argument of every log call passes through here: strings and nested objects alike.
        logMethod(args, method) {
          const scrubbed = args.map((arg) => scrubValue(arg, 0, scrub)) as Parameters<typeof method>;
          method.apply(this, scrubbed);
        },
      },
    },
    destination,
  );
}
