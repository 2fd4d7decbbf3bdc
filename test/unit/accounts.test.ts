import { readFileSync } from 'node:fs';
import path from 'node:path';
import { accountScopedKey, accountUserKey, callbackPathOf, parseAccountsFile, parseAccountUserKey, type Account } from '../../src/accounts';
import { weChatUserOrderKey } from '../../src/bridge/jobs';
import { conversationNameFor, userNameFor } from '../../src/bridge/to-vonage/conversation-routing';
import { planOutbound } from '../../src/bridge/to-wechat/plan-outbound';
import { createRecipientResolver } from '../../src/bridge/to-wechat/recipient';
import { accountsOf, loadConfig } from '../../src/config';
import type { ConversationMapping } from '../../src/store/store';
import { testKeyPair } from '../support/keys';

const KEY_A = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
const KEY_B = 'ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut';

const vonageEnv = () => ({
  VONAGE_APPLICATION_ID: '3c9a5b1e-0d4f-4a8e-9b6c-1f2e3d4c5b6a',
  VONAGE_PRIVATE_KEY: testKeyPair().privateKeyPem,
});
const singleAccountEnv = () => ({ WECHAT_TOKEN: 'token123', WECHAT_APP_ID: 'wxdefault', WECHAT_APP_SECRET: 'appsecret' });

const sales = { id: 'sales', appId: 'wxsales', appSecret: 'sales-secret', token: 'salesToken', encodingAesKey: KEY_A };
const support = { id: 'support-cn', appId: 'wxsupport', appSecret: 'support-secret', token: 'supportToken', encodingAesKey: KEY_B, conversationId: 'CON-support' };

/** loadConfig with WECHAT_ACCOUNTS_FILE=accounts.json holding `content`. */
function load(content: unknown, env: Record<string, string> = {}) {
  const text = typeof content === 'string' ? content : JSON.stringify(content);
  return loadConfig({ ...vonageEnv(), WECHAT_ACCOUNTS_FILE: 'accounts.json', ...env }, (file) => {
    if (file !== 'accounts.json') throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
    return text;
  });
}
const errorsOf = (result: ReturnType<typeof load>): string[] => (result.ok ? [] : result.errors);

describe('WECHAT_ACCOUNTS_FILE', () => {
  test('a file alone defines the accounts; the single-account variables are then not required', () => {
    const result = load([sales, support]);
    if (!result.ok) throw new Error(result.errors.join('; '));
    const accounts = accountsOf(result.config);
    expect(accounts.map((a) => a.id)).toEqual(['sales', 'support-cn']);
    expect(accounts[0]).toMatchObject({ appId: 'wxsales', token: 'salesToken', conversationId: undefined });
    expect(accounts[0]!.aesKeys).toHaveLength(1);
    expect(accounts[1]).toMatchObject({ conversationId: 'CON-support' });
  });

  test('the single-account variables still define `default` beside the file, and VONAGE_CONVERSATION_ID is the default conversation', () => {
    const result = load({ accounts: [sales] }, { ...singleAccountEnv(), VONAGE_CONVERSATION_ID: 'CON-shared' });
    if (!result.ok) throw new Error(result.errors.join('; '));
    expect(accountsOf(result.config).map((a) => [a.id, a.appId, a.conversationId])).toEqual([
      ['default', 'wxdefault', 'CON-shared'],
      ['sales', 'wxsales', 'CON-shared'],
    ]);
  });

  test('without the file the environment is the one account `default`, as before', () => {
    const result = loadConfig({ ...vonageEnv(), ...singleAccountEnv() });
    if (!result.ok) throw new Error(result.errors.join('; '));
    expect(result.config.accounts).toBeUndefined();
    expect(accountsOf(result.config)).toEqual([expect.objectContaining({ id: 'default', appId: 'wxdefault', token: 'token123' })]);
  });

  test('every error names the file, the account and the field, all reported at once, no secret echoed', () => {
    const errors = errorsOf(
      load([
        { ...sales, token: 'x' },
        { ...support, id: 'Not A Slug!', appSecret: 'has space secret' },
        { id: 'third', appId: 'wxthird', token: 'thirdToken' },
        { ...sales, id: 'fourth', appId: 'wxfourth', encodingAesKey: 'short', extra: 1 },
      ]),
    );
    expect(errors).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^WECHAT_ACCOUNTS_FILE accounts\.json: account "sales" field token must be 3 to 32 letters and digits/),
        expect.stringMatching(/^WECHAT_ACCOUNTS_FILE accounts\.json: account #2 field id must be a URL-safe slug/),
        expect.stringMatching(/^WECHAT_ACCOUNTS_FILE accounts\.json: account #2 field appSecret must not contain spaces/),
        expect.stringMatching(/^WECHAT_ACCOUNTS_FILE accounts\.json: account "third" field appSecret is required/),
        expect.stringMatching(/^WECHAT_ACCOUNTS_FILE accounts\.json: account "fourth" field encodingAesKey must be exactly 43/),
        expect.stringMatching(/^WECHAT_ACCOUNTS_FILE accounts\.json: account "fourth" unknown field\(s\) extra/),
      ]),
    );
    expect(errors).toHaveLength(6);
    expect(errors.join('\n')).not.toContain('has space secret');
  });

  test('duplicate ids (callback paths) and AppIDs are refused, also against the single-account variables', () => {
    const duplicateId = errorsOf(load([sales, { ...support, id: 'sales' }]));
    expect(duplicateId).toEqual([expect.stringMatching(/account "sales" field id \(callback path\) duplicates that of account "sales"/)]);
    const duplicateAppId = errorsOf(load([sales, { ...support, appId: 'wxsales' }]));
    expect(duplicateAppId).toEqual([expect.stringMatching(/account "support-cn" field appId duplicates that of account "sales"/)]);
    const defaultTwice = errorsOf(load([{ ...sales, id: 'default' }], singleAccountEnv()));
    expect(defaultTwice).toEqual([expect.stringMatching(/account "default" field id \(callback path\) duplicates that of the single-account variables/)]);
    const appIdOfDefault = errorsOf(load([{ ...sales, appId: 'wxdefault' }], singleAccountEnv()));
    expect(appIdOfDefault).toEqual([expect.stringMatching(/account "sales" field appId duplicates that of the single-account variables/)]);
  });

  test('an unreadable, non-JSON, empty or wrongly shaped file names the file', () => {
    expect(errorsOf(loadConfig({ ...vonageEnv(), WECHAT_ACCOUNTS_FILE: 'missing.json' }, () => { throw Object.assign(new Error('x'), { code: 'ENOENT' }); })))
      .toEqual(['WECHAT_ACCOUNTS_FILE missing.json: cannot be read (ENOENT)']);
    expect(errorsOf(load('{ not json'))).toEqual([expect.stringMatching(/^WECHAT_ACCOUNTS_FILE accounts\.json: is not valid JSON/)]);
    expect(errorsOf(load([]))).toEqual(['WECHAT_ACCOUNTS_FILE accounts.json: lists no account']);
    expect(errorsOf(load({ sales }))).toEqual([expect.stringMatching(/must be a JSON array of accounts/)]);
  });

  test('a previous key without a current one is refused', () => {
    const { encodingAesKey: _current, ...rest } = sales;
    expect(errorsOf(load([{ ...rest, previousEncodingAesKey: KEY_B }]))).toEqual([
      expect.stringMatching(/account "sales" field previousEncodingAesKey is set but encodingAesKey is not/),
    ]);
  });

  test('WECHAT_MESSAGE_MODES applies to every account: an encrypted mode needs each file account\'s key', () => {
    const { encodingAesKey: _key, ...plainOnly } = sales;
    expect(errorsOf(load([plainOnly, support], { WECHAT_MESSAGE_MODES: 'safe' }))).toEqual([
      'WECHAT_ACCOUNTS_FILE accounts.json: account "sales" field encodingAesKey is required: WECHAT_MESSAGE_MODES lists safe',
    ]);
    expect(load([sales, support], { WECHAT_MESSAGE_MODES: 'safe' }).ok).toBe(true);
  });

  test('some but not all single-account variables beside a file: the missing ones are required', () => {
    expect(errorsOf(load([sales], { WECHAT_TOKEN: 'token123' }))).toEqual(
      expect.arrayContaining([expect.stringMatching(/^WECHAT_APP_ID is required/), expect.stringMatching(/^WECHAT_APP_SECRET is required/)]),
    );
  });
});

describe('docs/accounts.md', () => {
  test('its example file is valid', () => {
    const doc = readFileSync(path.join(__dirname, '../../docs/accounts.md'), 'utf8');
    const example = /```json\n(\{\n {2}"accounts"[\s\S]*?)```/.exec(doc)?.[1];
    const parsed = parseAccountsFile('accounts.json', example ?? '');
    if (!parsed.ok) throw new Error(parsed.errors.join('; '));
    expect(parsed.accounts.map((a) => [a.id, a.aesKeys.length, a.conversationId])).toEqual([
      ['sales', 1, undefined],
      ['support-cn', 2, 'CON-7f1c2a4e-0000-4000-8000-000000000001'],
    ]);
  });
});

describe('per-account keys', () => {
  test("the default account keeps every key it had before accounts; others are prefixed with their id", () => {
    expect(callbackPathOf('default')).toBe('/weChatEvent');
    expect(callbackPathOf('sales')).toBe('/weChatEvent/sales');
    expect(weChatUserOrderKey('oUser')).toBe('wechat:oUser');
    expect(weChatUserOrderKey('oUser', 'default')).toBe('wechat:oUser');
    expect(weChatUserOrderKey('oUser', 'sales')).toBe('wechat:sales:oUser');
    expect(conversationNameFor('oUser', 'default')).toBe('wechat:oUser');
    expect(conversationNameFor('oUser', 'sales')).toBe('wechat:sales:oUser');
    expect(userNameFor('oUser', 'default')).toBe('wechat-oUser');
    expect(userNameFor('oUser', 'sales')).toBe('wechat-sales-oUser');
    expect(accountScopedKey('default', 'msg:oUser:1')).toBe('msg:oUser:1');
    expect(accountScopedKey('sales', 'msg:oUser:1')).toBe('account:sales:msg:oUser:1');
    expect(parseAccountUserKey(accountUserKey('default', 'oUser-_1'))).toEqual({ accountId: 'default', openid: 'oUser-_1' });
    expect(parseAccountUserKey(accountUserKey('sales', 'oUser-_1'))).toEqual({ accountId: 'sales', openid: 'oUser-_1' });
    // A default-account openid with a `:` stays whole unless its prefix is a configured account.
    expect(parseAccountUserKey('odd:openid', (id) => id === 'sales')).toEqual({ accountId: 'default', openid: 'odd:openid' });
  });
});

describe('outbound account', () => {
  const account = (id: string, conversationId: string | undefined): Account => ({
    id, appId: `wx${id}`, appSecret: 's', token: 'tok', aesKeys: [], conversationId,
  });
  const mappings = new Map<string, ConversationMapping>([
    ['CON-u1', { openid: 'oDefaultUser', conversationId: 'CON-u1', userId: 'USR-1', memberId: 'MEM-1' } as ConversationMapping],
    ['CON-u2', { openid: 'sales:oSalesUser', conversationId: 'CON-u2', userId: 'USR-2', memberId: 'MEM-2' } as ConversationMapping],
  ]);
  const store = { findConversationMapping: async (conversationId: string) => mappings.get(conversationId) };

  test('several accounts sharing one conversation: body.account is required and must be one of them', async () => {
    const resolve = createRecipientResolver([account('a', 'CON-shared'), account('b', 'CON-shared')], store);
    await expect(resolve({ conversationId: 'CON-shared', body: { to: 'oX' } })).resolves.toMatchObject({ ok: false, errorCode: 'missing_account' });
    await expect(resolve({ conversationId: 'CON-shared', body: { to: 'oX', account: 'b' } })).resolves.toEqual({ ok: true, openid: 'oX', accountId: 'b' });
    await expect(resolve({ conversationId: 'CON-shared', body: { to: 'oX', account: 'nope' } })).resolves.toMatchObject({ ok: false, errorCode: 'unknown_account' });
    await expect(resolve({ conversationId: 'CON-shared', body: { account: 'a' } })).resolves.toMatchObject({ ok: false, errorCode: 'missing_to' });
  });

  test('one account on a shared conversation needs no body.account; per-user conversations take theirs from the mapping', async () => {
    const resolve = createRecipientResolver([account('default', undefined), account('sales', undefined), account('support', 'CON-support')], store);
    await expect(resolve({ conversationId: 'CON-support', body: { to: 'oX' } })).resolves.toEqual({ ok: true, openid: 'oX', accountId: 'support' });
    await expect(resolve({ conversationId: 'CON-support', body: { to: 'oX', account: 'sales' } })).resolves.toMatchObject({ ok: false, errorCode: 'account_mismatch' });
    await expect(resolve({ conversationId: 'CON-u1', body: {} })).resolves.toEqual({ ok: true, openid: 'oDefaultUser', accountId: 'default' });
    await expect(resolve({ conversationId: 'CON-u2', body: {} })).resolves.toEqual({ ok: true, openid: 'oSalesUser', accountId: 'sales' });
    await expect(resolve({ conversationId: 'CON-u2', body: { account: 'default' } })).resolves.toMatchObject({ ok: false, errorCode: 'account_mismatch' });
    await expect(resolve({ conversationId: 'CON-other', body: { to: 'oX' } })).resolves.toMatchObject({ ok: false, errorCode: 'unknown_conversation' });
  });

  test("a shared conversation's outbound jobs are ordered behind the recipient of the named account", () => {
    const accounts = [account('a', 'CON-shared'), account('b', 'CON-shared')];
    const event = (body: Record<string, unknown>) => ({ type: 'custom:wechat:message', id: '7', conversationId: 'CON-shared', body: { direction: 'outbound', ...body } }) as never;
    expect(planOutbound(event({ to: 'oX', account: 'b' }), { accounts })?.orderKey).toBe('wechat:b:oX');
    expect(planOutbound(event({ to: 'oX' }), { accounts })?.orderKey).toBe('conversation:CON-shared');
  });
});
