/**
 * Several WeChat Official Accounts in one bridge. An `Account` is resolved from the callback route
 * (`/weChatEvent/{id}`) or from a stored job, and threads through the bridge as a value: the
 * webhook checks its token and keys, the worker sends with its access token, the store keys are
 * scoped by its id. Pure: values in, values out (reading the file is the caller's).
 *
 * The `default` account (the single-account variables, `/weChatEvent`) keeps every key it had
 * before accounts existed, so that a database made by a single-account bridge keeps working:
 * dedup keys, order keys `wechat:<openid>`, mappings by bare openid, conversation names
 * `wechat:<openid>`. Other accounts prefix their id.
 */
import { z } from 'zod';
import { decodeEncodingAesKey } from './wechat/crypto';

export const DEFAULT_ACCOUNT_ID = 'default';

export interface Account {
  /** A URL-safe slug: the callback path `/weChatEvent/{id}`, the `account` of inbound events. */
  id: string;
  appId: string;
  appSecret: string;
  /** The Token configured on the WeChat admin page: signs this account's pushes. */
  token: string;
  /** Current EncodingAESKey first, then the previous one. */
  aesKeys: Buffer[];
  /** Fixed mode for this account: every user of it in this conversation. Undefined: per-user mode. */
  conversationId: string | undefined;
}

export const isDefaultAccount = (accountId: string): boolean => accountId === DEFAULT_ACCOUNT_ID;

/** The callback path of an account. */
export const callbackPathOf = (accountId: string): string =>
  isDefaultAccount(accountId) ? '/weChatEvent' : `/weChatEvent/${accountId}`;

/**
 * One WeChat user of one account, as a single string: the bare openid for the default account (as
 * stored before accounts existed), `<id>:<openid>` for the others. Openids are URL-safe base64
 * (letters, digits, `-`, `_`) and ids are slugs, so the first `:` separates them unambiguously.
 */
export const accountUserKey = (accountId: string, openid: string): string =>
  isDefaultAccount(accountId) ? openid : `${accountId}:${openid}`;

export function parseAccountUserKey(key: string, isAccount: (id: string) => boolean = () => true): { accountId: string; openid: string } {
  const colon = key.indexOf(':');
  // A prefix that names no other account is part of a default-account openid (WeChat's have no `:`,
  // but the bridge does not rely on it).
  if (colon < 0 || isDefaultAccount(key.slice(0, colon)) || !isAccount(key.slice(0, colon))) return { accountId: DEFAULT_ACCOUNT_ID, openid: key };
  return { accountId: key.slice(0, colon), openid: key.slice(colon + 1) };
}

/** A store key (dedup, seen markers) of something of this account; the default account's are unchanged. */
export const accountScopedKey = (accountId: string, key: string): string =>
  isDefaultAccount(accountId) ? key : `account:${accountId}:${key}`;

/**
 * Lower-case so that ids cannot differ only in case (Express routes ignore case, so paths would
 * collide); at most 32 characters so that conversation names (`wechat:<id>:<openid>`) stay short.
 */
const ACCOUNT_ID = /^[a-z0-9](?:[a-z0-9_-]{0,31})$/;

/** The rules the single-account variables follow too (config.ts uses the same ones). */
export const weChatTokenRule = z.string().regex(/^[A-Za-z0-9]{3,32}$/, 'must be 3 to 32 letters and digits, as WeChat requires');
export const noSpacesRule = z.string().min(1, 'must not be empty').regex(/^\S+$/, 'must not contain spaces');
export const aesKeyRule = z
  .string()
  .refine((v) => /^[A-Za-z0-9]{43}$/.test(v), 'must be exactly 43 letters and digits (the EncodingAESKey from the WeChat admin page)');
export const conversationIdRule = z.string().regex(/^\S+$/, 'must be a conversation id (CON-…) without spaces');

const entrySchema = z
  .object({
    id: z.string({ required_error: 'is required' }).regex(ACCOUNT_ID, 'must be a URL-safe slug: lower-case letters, digits, - and _, at most 32, starting with a letter or digit'),
    appId: noSpacesRule,
    appSecret: noSpacesRule,
    token: weChatTokenRule,
    encodingAesKey: aesKeyRule.optional(),
    previousEncodingAesKey: aesKeyRule.optional(),
    conversationId: conversationIdRule.optional(),
  })
  .strict();

export type AccountsFileResult = { ok: true; accounts: Account[] } | { ok: false; errors: string[] };

/**
 * The accounts of a `WECHAT_ACCOUNTS_FILE`. Every error names the file, the account (its id, or
 * its position when it has none) and the field. Secrets are never echoed.
 *
 * `defaultConversationId` (VONAGE_CONVERSATION_ID) applies to accounts that name none.
 * `alsoConfigured`: accounts defined elsewhere (the single-account variables' `default`), checked
 * for duplicates too.
 */
export function parseAccountsFile(
  fileName: string,
  text: string,
  options: { defaultConversationId?: string | undefined; alsoConfigured?: Account[] } = {},
): AccountsFileResult {
  const where = `WECHAT_ACCOUNTS_FILE ${fileName}`;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    return { ok: false, errors: [`${where}: is not valid JSON (${(error as Error).message})`] };
  }
  const list = Array.isArray(data) ? data : data !== null && typeof data === 'object' ? (data as { accounts?: unknown }).accounts : undefined;
  if (!Array.isArray(list)) return { ok: false, errors: [`${where}: must be a JSON array of accounts, or an object with an "accounts" array`] };
  if (list.length === 0) return { ok: false, errors: [`${where}: lists no account`] };

  const errors: string[] = [];
  const accounts: Account[] = [];
  list.forEach((entry, index) => {
    const rawId = entry !== null && typeof entry === 'object' && typeof (entry as { id?: unknown }).id === 'string' ? (entry as { id: string }).id : undefined;
    const name = rawId !== undefined && ACCOUNT_ID.test(rawId) ? `account "${rawId}"` : `account #${index + 1}`;
    const parsed = entrySchema.safeParse(entry);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const field = issue.path.join('.');
        const message = issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue.message === 'Required' ? 'is required' : issue.message;
        errors.push(`${where}: ${name}${field ? ` field ${field}` : ''} ${message}`);
      }
      return;
    }
    const e = parsed.data;
    if (e.previousEncodingAesKey !== undefined && e.encodingAesKey === undefined) {
      errors.push(`${where}: ${name} field previousEncodingAesKey is set but encodingAesKey is not: set the current key too`);
      return;
    }
    accounts.push({
      id: e.id,
      appId: e.appId,
      appSecret: e.appSecret,
      token: e.token,
      aesKeys: [e.encodingAesKey, e.previousEncodingAesKey].filter((k): k is string => k !== undefined).map(decodeEncodingAesKey),
      conversationId: e.conversationId ?? options.defaultConversationId,
    });
  });

  errors.push(...duplicateErrors(where, [...(options.alsoConfigured ?? []), ...accounts], options.alsoConfigured?.length ?? 0));
  return errors.length > 0 ? { ok: false, errors } : { ok: true, accounts };
}

/**
 * Ids and AppIDs must each name one account. Ids are lower-case slugs and the path is made of the
 * id alone, so a duplicate callback path is exactly a duplicate id (reported with its path).
 */
function duplicateErrors(where: string, accounts: Account[], fromEnvironment: number): string[] {
  const errors: string[] = [];
  const origin = (index: number) => (index < fromEnvironment ? 'the single-account variables (WECHAT_APP_ID…)' : `account "${accounts[index]!.id}"`);
  const check = (field: string, valueOf: (a: Account) => string) => {
    const first = new Map<string, number>();
    accounts.forEach((account, index) => {
      const value = valueOf(account);
      const earlier = first.get(value);
      if (earlier === undefined) first.set(value, index);
      else errors.push(`${where}: ${origin(index)} field ${field} duplicates that of ${origin(earlier)}`);
    });
  };
  check('id (callback path)', (a) => callbackPathOf(a.id));
  check('appId', (a) => a.appId);
  return errors;
}
