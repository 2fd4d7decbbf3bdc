/**
 * Structured logs (pino) that never carry a secret.
 *
 * Written synchronously to stdout: a line is out of the process before the call returns, so the
 * last lines before a crash or a SIGKILL (the "stored and acknowledged" of a message WeChat was just
 * told `success` about, the reason for a fatal exit) are never left in a buffer that dies with it.
 * pino's asynchronous mode would buffer lines whenever the reader of stdout is slower than the
 * bridge. The cost is one write(2) per line, and a reader that stops reading blocks the bridge.
 *
 * Two layers, because one is not enough: secret-bearing *keys* (`appSecret`, `authorization`…)
 * have their value replaced wherever they appear in a logged object, and `scrubSecrets` rewrites
 * secret-bearing *text* (an access token inside a URL, a bearer token inside an error message) in
 * every string that is logged. Both in one walk over each log call's arguments (and a child
 * logger's bindings): pino's own `redact` option did the keys again, at about 25 µs a line, and the
 * scrubbing of ids and words now costs one regular-expression test each.
 */
import pino, { type Bindings, type ChildLoggerOptions, type DestinationStream, type Logger } from 'pino';
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

/** Keys whose value is replaced wherever they appear in a logged object (up to `MAX_SCRUB_DEPTH` deep). */
const REDACTED_KEYS = new Set([...SECRET_KEYS, 'cookie']);
const MAX_SCRUB_DEPTH = 4;

/**
 * Text that every pattern of `scrubSecrets` needs somewhere in a match (a superset: case-insensitive
 * where some patterns are not): without it, no pattern can match and the text is returned as it is.
 */
const MAYBE_SECRET_TEXT = /PRIVATE KEY|access_?token|secret=|Bearer\s|eyJ/i;

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
    if (value && value.length >= MIN_KNOWN_SECRET_CHARS && out.includes(value)) out = out.split(value).join('[REDACTED]');
  }
  // Most logged strings are ids and words: one scan decides that none of the patterns below can match.
  if (!MAYBE_SECRET_TEXT.test(out)) return out;
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

/** A copy of `value` with secret-bearing keys redacted and every string scrubbed. */
function scrubValue(value: unknown, depth: number, scrub: SecretScrubber): unknown {
  if (typeof value === 'string') return scrub(value);
  if (depth > MAX_SCRUB_DEPTH || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    return { type: value.name, message: scrub(value.message), stack: value.stack ? scrub(value.stack) : undefined };
  }
  if (Array.isArray(value)) return value.map((item) => scrubValue(item, depth + 1, scrub));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = REDACTED_KEYS.has(key) ? '[REDACTED]' : scrubValue(item, depth + 1, scrub);
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
  const logger = pino(
    {
      level: options.level,
      name: options.name ?? 'wechat-conversation-bridge',
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
  // A child logger's bindings are written on every line of it, and pino's formatters never see
  // them: scrubbed once, when the child is made. Children are made from their parent's prototype,
  // so every descendant inherits this `child`.
  type MakeChild = (this: Logger, bindings: Bindings, childOptions?: ChildLoggerOptions) => Logger;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with each parent as `this` below
  const makeChild = logger.child as unknown as MakeChild;
  const scrubbedChild: MakeChild = function (bindings, childOptions) {
    return makeChild.call(this, scrubValue(bindings, 0, scrub) as Bindings, childOptions);
  };
  logger.child = scrubbedChild as unknown as Logger['child'];
  return logger;
}
