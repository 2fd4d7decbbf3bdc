/**
 * `--account <id>`: which Official Account a command acts as. The single-account variables
 * (WECHAT_APP_ID, WECHAT_APP_SECRET) are the account `default`; the others come from
 * WECHAT_ACCOUNTS_FILE, read and validated with the bridge's own rules.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_ACCOUNT_ID, parseAccountsFile } from '../accounts';
import { loadSettings } from '../config';
import type { OptionSpec } from './command';
import { CliFailure, UsageError } from './errors';

export const ACCOUNT_OPTION: OptionSpec = {
  type: 'string',
  valueName: 'id',
  description: 'the Official Account to act as: an id of WECHAT_ACCOUNTS_FILE (default: WECHAT_APP_ID, the account `default`)',
};

export interface CliWeChatApp {
  accountId: string;
  appId: string;
  appSecret: string;
  baseUrl: string;
}

/** The app credentials of `accountId` (undefined: `default`, or the file's only account). */
export function weChatAppOf(env: NodeJS.ProcessEnv, cwd: string, accountId: string | undefined, command: string): CliWeChatApp {
  const base = loadSettings(env, ['WECHAT_API_BASE_URL', 'WECHAT_ACCOUNTS_FILE']);
  if (!base.ok) throw new CliFailure(`cannot send, fix these settings (see example.env): ${base.errors.join('; ')}`);
  const file = base.settings.WECHAT_ACCOUNTS_FILE;
  const hasDefault = typeof env.WECHAT_APP_ID === 'string' && env.WECHAT_APP_ID.trim() !== '';

  if ((accountId === undefined || accountId === DEFAULT_ACCOUNT_ID) && (hasDefault || file === undefined)) {
    const result = loadSettings(env, ['WECHAT_APP_ID', 'WECHAT_APP_SECRET']);
    if (!result.ok) throw new CliFailure(`cannot send, fix these settings (see example.env): ${result.errors.join('; ')}`);
    return { accountId: DEFAULT_ACCOUNT_ID, appId: result.settings.WECHAT_APP_ID, appSecret: result.settings.WECHAT_APP_SECRET, baseUrl: base.settings.WECHAT_API_BASE_URL };
  }
  if (file === undefined) throw new UsageError(`--account ${accountId} needs WECHAT_ACCOUNTS_FILE (the file that lists the accounts)`, command);
  let text: string;
  try {
    text = readFileSync(path.resolve(cwd, file), 'utf8');
  } catch (error) {
    throw new CliFailure(`WECHAT_ACCOUNTS_FILE ${file}: cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const parsed = parseAccountsFile(file, text);
  if (!parsed.ok) throw new CliFailure(parsed.errors.join('; '));
  const ids = parsed.accounts.map((a) => a.id);
  if (accountId === undefined && parsed.accounts.length > 1) {
    throw new UsageError(`several accounts are configured: name one with --account (${ids.join(', ')})`, command);
  }
  const account = accountId === undefined ? parsed.accounts[0]! : parsed.accounts.find((a) => a.id === accountId);
  if (account === undefined) throw new UsageError(`no account ${accountId} in ${file} (it lists ${ids.join(', ')})`, command);
  return { accountId: account.id, appId: account.appId, appSecret: account.appSecret, baseUrl: base.settings.WECHAT_API_BASE_URL };
}

/**
 * The account a stored job is about, when its payload says: an inbound event's `account` (or, for a
 * job stored before accounts existed, its route: the default account), an outbound event's
 * `body.account`. Undefined when the payload does not tell (a status, a per-user reply without `account`).
 */
export function accountOfJobPayload(payload: unknown): string | undefined {
  if (payload === null || typeof payload !== 'object') return undefined;
  const p = payload as { event?: { type?: unknown; body?: Record<string, unknown> }; route?: { accountId?: unknown }; body?: Record<string, unknown> };
  const inbound = p.event?.body?.['account'];
  if (typeof inbound === 'string' && p.event?.body?.['direction'] === 'inbound') return inbound;
  if (p.route !== undefined) return typeof p.route.accountId === 'string' ? p.route.accountId : DEFAULT_ACCOUNT_ID;
  if (p.event?.body?.['direction'] === 'inbound') return DEFAULT_ACCOUNT_ID;
  const outbound = p.body?.['account'];
  return typeof outbound === 'string' && outbound !== '' ? outbound : undefined;
}
