/**
 * Reads and validates the environment once, at start-up. Every bad variable is reported
 * together, with the reason, so a user fixes their `.env` in one go instead of one crash at a time.
 *
 * Secrets are validated here but never echoed back in an error message.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { DEFAULT_ACCOUNT_ID, parseAccountsFile, type Account } from './accounts';
import { loadVonagePrivateKey } from './vonage/private-key';
import { decodeEncodingAesKey } from './wechat/crypto';
import { WECHAT_MESSAGE_MODES, type WeChatMessageMode } from './wechat/inbound';
import { LOG_FORMATS, type LogFormat } from './logger';

export interface Config {
  port: number;
  host: string;
  publicUrl: string | undefined;
  /**
   * The single-account variables (the `default` account) and the WeChat API host. With
   * WECHAT_ACCOUNTS_FILE and no single-account variables, token/appId/appSecret/aesKeys are those of
   * the file's first account and unused: `accounts` is what the bridge serves.
   */
  weChat: {
    token: string;
    appId: string;
    appSecret: string;
    /** Current EncodingAESKey first, then the previous one: decryption tries them in this order. */
    aesKeys: Buffer[];
    /**
     * WECHAT_MESSAGE_MODES: the push modes accepted. Undefined: what the keys allow (plain always;
     * compatible and safe when an EncodingAESKey is set).
     */
    messageModes?: readonly WeChatMessageMode[];
    apiBaseUrl: string;
  };
  vonage: {
    applicationId: string;
    privateKeyPem: string;
    apiBaseUrl: string;
    /** Fixed mode: every WeChat user's messages go here. Undefined: per-user conversation mode. */
    conversationId: string | undefined;
    signatureSecret: string | undefined;
    /** The secret being rotated out: still accepted, after `signatureSecret`. */
    previousSignatureSecret?: string | undefined;
  };
  /**
   * Every account the bridge serves (WECHAT_ACCOUNTS_FILE, plus `default` from the single-account
   * variables when they are set). Undefined: the one account `default` made of `weChat` and
   * `vonage.conversationId` (hand-built configurations); read it through `accountsOf`.
   */
  accounts?: Account[];
  /** Media relay; optional so that hand-built configurations (tests, tools) may leave it out. */
  media?: MediaConfig;
  /** How replies reach WeChat users; optional: customer-service (custom/send) when left out. */
  replies?: RepliesConfig;
  /** The reply window's rules (reply-window.ts); WeChat's current ones when left out. */
  replyWindow?: { messageReplies: number; messageWindowMs: number };
  databaseUrl: string;
  logLevel: LogLevel;
  /** LOG_FORMAT; undefined: pretty on a terminal outside production, JSON otherwise. */
  logFormat?: LogFormat;
}

export interface MediaConfig {
  /** MEDIA_CACHE_DIR: where WeChat users' media are cached for their links. Default `./data/media`. */
  cacheDir?: string;
  /** MEDIA_LINK_SECRET: signs media links; default derived from WECHAT_APP_SECRET. */
  linkSecret?: string | undefined;
  /**
   * Tests and the sandbox only (no environment variable): agents' `media_url` may be http:// and on
   * loopback or private addresses. Production refuses both (SSRF).
   */
  allowPrivateNetworks?: boolean;
}

/** WECHAT_REPLY_MODE: how replies reach WeChat users. */
export const WECHAT_REPLY_MODES = ['customer-service', 'passive', 'auto'] as const;
export type WeChatReplyMode = (typeof WECHAT_REPLY_MODES)[number];

export interface RepliesConfig {
  /** WECHAT_REPLY_MODE: `customer-service` (custom/send), `passive` (the answer to a push), `auto` (passive for a user after a 48001). */
  mode: WeChatReplyMode;
  /** WECHAT_PASSIVE_HOLDING_TEXT: answered on WeChat's last delivery when no reply came; undefined: `success`. */
  holdingText: string | undefined;
  /** WECHAT_PASSIVE_REPLY_TTL_SECONDS: how long a queued reply waits for a push before it fails `expired`. */
  replyTtlMs: number;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type ConfigResult = { ok: true; config: Config } | { ok: false; errors: string[] };

/**
 * An empty value (`FOO=` in a .env file) means "not set", as users expect from example files. Blank
 * values are removed before parsing, so that they get their defaults and "is required" messages.
 */
function withoutBlanks(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([, value]) => !(typeof value === 'string' && value.trim() === '')));
}
const optional = <T extends z.ZodTypeAny>(schema: T) => schema.optional();

const httpUrl = z
  .string()
  .url('must be an absolute URL such as https://example.com')
  .refine((v) => /^https?:\/\//i.test(v), 'must start with http:// or https://')
  .transform((v) => v.replace(/\/+$/, ''));

const aesKey = z
  .string()
  .refine((v) => /^[A-Za-z0-9]{43}$/.test(v), 'must be exactly 43 letters and digits (the EncodingAESKey from the WeChat admin page)');

const schema = z.object({
  PORT: optional(z.coerce.number().int().min(0).max(65535)).default(3000),
  HOST: optional(z.string()).default('0.0.0.0'),
  PUBLIC_URL: optional(httpUrl),
  WECHAT_TOKEN: z
    .string({ required_error: 'is required (the Token you entered on the WeChat admin or sandbox page)' })
    .regex(/^[A-Za-z0-9]{3,32}$/, 'must be 3 to 32 letters and digits, as WeChat requires'),
  WECHAT_APP_ID: z
    .string({ required_error: 'is required (appID from the WeChat admin or sandbox page)' })
    .regex(/^\S+$/, 'must not contain spaces'),
  WECHAT_APP_SECRET: z
    .string({ required_error: 'is required (appsecret from the WeChat admin or sandbox page)' })
    .regex(/^\S+$/, 'must not contain spaces'),
  WECHAT_ENCODING_AES_KEY: optional(aesKey),
  WECHAT_PREVIOUS_ENCODING_AES_KEY: optional(aesKey),
  WECHAT_MESSAGE_MODES: optional(
    z
      .string()
      .transform((v) => v.split(',').map((mode) => mode.trim().toLowerCase()).filter((mode) => mode !== ''))
      .pipe(
        z
          .array(z.enum(WECHAT_MESSAGE_MODES, { errorMap: () => ({ message: 'must list plain, compatible and/or safe, separated by commas' }) }))
          .min(1, 'must list at least one of plain, compatible, safe'),
      ),
  ),
  WECHAT_API_BASE_URL: optional(httpUrl).default('https://api.weixin.qq.com'),
  WECHAT_REPLY_MODE: optional(
    z.enum(WECHAT_REPLY_MODES, { errorMap: () => ({ message: 'must be customer-service, passive or auto' }) }),
  ).default('customer-service'),
  // A passive reply's text shows in the chat: WeChat answers an empty one with an error to the user.
  WECHAT_PASSIVE_HOLDING_TEXT: optional(z.string().max(600, 'must be at most 600 characters')),
  // At most 6 days: the status's dedup key (7 days) must outlive the reply, so it never gets two statuses.
  WECHAT_PASSIVE_REPLY_TTL_SECONDS: optional(
    z.coerce.number().int().min(10, 'must be at least 10 seconds').max(6 * 24 * 60 * 60, 'must be at most 518400 (6 days)'),
  ).default(24 * 60 * 60),
  // A JSON file listing several Official Accounts (docs/accounts.md).
  WECHAT_ACCOUNTS_FILE: optional(z.string()),
  VONAGE_APPLICATION_ID: z
    .string({ required_error: 'is required (the id of your Vonage application)' })
    .regex(/^[0-9a-fA-F-]{8,64}$/, 'must be a Vonage application id (a UUID)'),
  VONAGE_PRIVATE_KEY: z.string({ required_error: "is required (PEM text or a path to the application's private.key)" }),
  VONAGE_API_BASE_URL: optional(httpUrl).default('https://api.nexmo.com/v1'),
  // Set: every WeChat user in this one conversation. Unset: a conversation per WeChat user.
  VONAGE_CONVERSATION_ID: optional(z.string().regex(/^\S+$/, 'must be a conversation id (CON-…) without spaces')),
  VONAGE_SIGNATURE_SECRET: optional(z.string()),
  VONAGE_PREVIOUS_SIGNATURE_SECRET: optional(z.string()),
  DATABASE_URL: optional(
    z
    .string()
      .refine(
        (v) => v.startsWith('sqlite:') || /^postgres(ql)?:\/\//.test(v),
        'must be sqlite:<path> or postgres://user@host/db',
      ),
  ).default('sqlite:./data/bridge.db'),
  LOG_LEVEL: optional(z.enum(LOG_LEVELS)).default('info'),
  LOG_FORMAT: optional(z.enum(LOG_FORMATS)),
  MEDIA_CACHE_DIR: optional(z.string()).default('./data/media'),
  MEDIA_LINK_SECRET: optional(z.string().min(16, 'must be at least 16 characters (a random secret)')),
  // WeChat's documented limits today: 5 customer-service messages within 48 h of a user's message.
  WECHAT_REPLIES_PER_MESSAGE: optional(z.coerce.number().int().min(1).max(1000)).default(5),
  WECHAT_REPLY_WINDOW_HOURS: optional(z.coerce.number().int().min(1).max(48)).default(48),
});

/** `NAME reason`, one line per bad variable. */
function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => `${issue.path.join('.')} ${issue.message === 'Required' ? 'is required' : issue.message}`);
}

/** Every variable as validated (and defaulted) by the rules above, keyed by its name. */
export type Settings = z.infer<typeof schema>;
export type SettingName = keyof Settings;
export type SettingsResult<K extends SettingName> = { ok: true; settings: Pick<Settings, K> } | { ok: false; errors: string[] };

/**
 * Validates only the named variables, with loadConfig's rules, defaults and messages. For tools that
 * need a part of the configuration (the operator CLI: DATABASE_URL for the store, the WeChat app
 * credentials for a test message), so that they do not demand settings they never use.
 */
export function loadSettings<K extends SettingName>(env: NodeJS.ProcessEnv, names: readonly K[]): SettingsResult<K> {
  const mask = Object.fromEntries(names.map((name) => [name, true])) as { [P in SettingName]?: true };
  const parsed = schema.pick(mask).safeParse(withoutBlanks(env));
  if (!parsed.success) return { ok: false, errors: describeIssues(parsed.error) };
  return { ok: true, settings: parsed.data };
}

/** With an accounts file, the single-account variables may all be left out (then there is no `default` account). */
const fileOnlySchema = schema.partial({ WECHAT_TOKEN: true, WECHAT_APP_ID: true, WECHAT_APP_SECRET: true });
const SINGLE_ACCOUNT_VARIABLES = ['WECHAT_TOKEN', 'WECHAT_APP_ID', 'WECHAT_APP_SECRET', 'WECHAT_ENCODING_AES_KEY', 'WECHAT_PREVIOUS_ENCODING_AES_KEY'] as const;

/** The accounts a configuration serves: `config.accounts`, or the one `default` account of the single-account fields. */
export function accountsOf(config: Pick<Config, 'accounts' | 'weChat' | 'vonage'>): Account[] {
  if (config.accounts !== undefined) return config.accounts;
  const { token, appId, appSecret, aesKeys } = config.weChat;
  return [{ id: DEFAULT_ACCOUNT_ID, token, appId, appSecret, aesKeys, conversationId: config.vonage.conversationId }];
}

export function loadConfig(env: NodeJS.ProcessEnv, readFile?: (path: string) => string): ConfigResult {
  const present = withoutBlanks(env);
  const accountsFile = typeof present.WECHAT_ACCOUNTS_FILE === 'string' ? present.WECHAT_ACCOUNTS_FILE.trim() : undefined;
  const hasDefaultAccount = accountsFile === undefined || SINGLE_ACCOUNT_VARIABLES.some((name) => present[name] !== undefined);
  const parsed = (hasDefaultAccount ? schema : fileOnlySchema).safeParse(present);
  const errors: string[] = parsed.success ? [] : describeIssues(parsed.error);

  // Checks that need more than a pattern. The private key is parsed for real so that a bad key
  // fails at start, not at the first message hours later.
  let privateKeyPem = '';
  const rawKey = typeof env.VONAGE_PRIVATE_KEY === 'string' ? env.VONAGE_PRIVATE_KEY.trim() : '';
  if (rawKey !== '') {
    try {
      privateKeyPem = (readFile ? loadVonagePrivateKey(rawKey, readFile) : loadVonagePrivateKey(rawKey)).pem;
    } catch (error) {
      errors.push(`VONAGE_PRIVATE_KEY ${(error as Error).message}`);
    }
  }
  if (parsed.success && parsed.data.WECHAT_PREVIOUS_ENCODING_AES_KEY && !parsed.data.WECHAT_ENCODING_AES_KEY) {
    errors.push('WECHAT_PREVIOUS_ENCODING_AES_KEY is set but WECHAT_ENCODING_AES_KEY is not: set the current key too');
  }
  const encryptedModes = parsed.success ? (parsed.data.WECHAT_MESSAGE_MODES ?? []).filter((mode) => mode !== 'plain') : [];
  if (hasDefaultAccount && encryptedModes.length > 0 && !parsed.data?.WECHAT_ENCODING_AES_KEY) {
    errors.push(`WECHAT_MESSAGE_MODES lists ${encryptedModes.join(', ')} but WECHAT_ENCODING_AES_KEY is not set: those modes need it`);
  }

  const defaultAccount: Account | undefined =
    parsed.success && hasDefaultAccount
      ? {
          id: DEFAULT_ACCOUNT_ID,
          token: parsed.data.WECHAT_TOKEN!,
          appId: parsed.data.WECHAT_APP_ID!,
          appSecret: parsed.data.WECHAT_APP_SECRET!,
          aesKeys: [parsed.data.WECHAT_ENCODING_AES_KEY, parsed.data.WECHAT_PREVIOUS_ENCODING_AES_KEY]
            .filter((k): k is string => typeof k === 'string')
            .map(decodeEncodingAesKey),
          conversationId: parsed.data.VONAGE_CONVERSATION_ID,
        }
      : undefined;
  let accounts: Account[] | undefined;
  if (accountsFile !== undefined) {
    let text: string | undefined;
    try {
      text = (readFile ?? ((file: string) => readFileSync(file, 'utf8')))(accountsFile);
    } catch (error) {
      errors.push(`WECHAT_ACCOUNTS_FILE ${accountsFile}: cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    if (text !== undefined) {
      const fromFile = parseAccountsFile(accountsFile, text, {
        defaultConversationId: parsed.success ? parsed.data.VONAGE_CONVERSATION_ID : undefined,
        alsoConfigured: defaultAccount ? [defaultAccount] : [],
      });
      if (fromFile.ok) {
        accounts = [...(defaultAccount ? [defaultAccount] : []), ...fromFile.accounts];
        // WECHAT_MESSAGE_MODES applies to every account: encrypted modes need each one's key.
        for (const account of fromFile.accounts) {
          if (encryptedModes.length > 0 && account.aesKeys.length === 0) {
            errors.push(`WECHAT_ACCOUNTS_FILE ${accountsFile}: account "${account.id}" field encodingAesKey is required: WECHAT_MESSAGE_MODES lists ${encryptedModes.join(', ')}`);
          }
        }
      } else errors.push(...fromFile.errors);
    }
  }

  if (!parsed.success || errors.length > 0) return { ok: false, errors };
  const d = parsed.data;
  const main = defaultAccount ?? accounts![0]!;
  return {
    ok: true,
    config: {
      port: d.PORT,
      host: d.HOST,
      publicUrl: d.PUBLIC_URL,
      weChat: {
        token: main.token,
        appId: main.appId,
        appSecret: main.appSecret,
        aesKeys: main.aesKeys,
        ...(d.WECHAT_MESSAGE_MODES ? { messageModes: [...new Set(d.WECHAT_MESSAGE_MODES)] } : {}),
        apiBaseUrl: d.WECHAT_API_BASE_URL,
      },
      ...(accounts !== undefined ? { accounts } : {}),
      vonage: {
        applicationId: d.VONAGE_APPLICATION_ID,
        privateKeyPem,
        apiBaseUrl: d.VONAGE_API_BASE_URL,
        conversationId: d.VONAGE_CONVERSATION_ID,
        signatureSecret: d.VONAGE_SIGNATURE_SECRET,
        previousSignatureSecret: d.VONAGE_PREVIOUS_SIGNATURE_SECRET,
      },
      media: { cacheDir: d.MEDIA_CACHE_DIR, linkSecret: d.MEDIA_LINK_SECRET },
      replies: {
        mode: d.WECHAT_REPLY_MODE,
        holdingText: d.WECHAT_PASSIVE_HOLDING_TEXT,
        replyTtlMs: d.WECHAT_PASSIVE_REPLY_TTL_SECONDS * 1000,
      },
      replyWindow: { messageReplies: d.WECHAT_REPLIES_PER_MESSAGE, messageWindowMs: d.WECHAT_REPLY_WINDOW_HOURS * 60 * 60 * 1000 },
      databaseUrl: d.DATABASE_URL,
      logLevel: d.LOG_LEVEL,
      logFormat: d.LOG_FORMAT,
    },
  };
}
