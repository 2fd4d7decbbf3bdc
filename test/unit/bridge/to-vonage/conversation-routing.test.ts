/**
 * Conversation routing against the Vonage emulator's whole API (conversations, users, members,
 * duplicate-name errors) and a real store: one conversation per WeChat user, whatever races or
 * interruptions come first.
 */
import {
  conversationDisplayName,
  conversationNameFor,
  createConversationRouter,
  nextRoutingStep,
  userDisplayName,
  userNameFor,
  VONAGE_DISPLAY_NAME_MAX_CHARS,
  VONAGE_NAME_MAX_CHARS,
} from '../../../../src/bridge/to-vonage/conversation-routing';
import { MAX_WECHAT_ID_LENGTH } from '../../../../src/wechat/message';
import { PermanentError } from '../../../../src/errors';
import { startVonageEmulator, type VonageEmulator } from '../../../../src/sandbox/vonage/emulator';
import { SqliteStore } from '../../../../src/store/sqlite/store';
import { createVonageClient, type VonageClient } from '../../../../src/vonage/client';
import { createApplicationTokenSource } from '../../../../src/vonage/jwt';
import { testKeyPair } from '../../../support/keys';

const APP_ID = '3c9a5b1e-0d4f-4a8e-9b6c-1f2e3d4c5b6a';
const ROUTE = { openid: 'oUser-0123456789abcdefghij', account: 'gh_0123456789ab' };

describe('nextRoutingStep', () => {
  test.each([
    [undefined, 'create-conversation'],
    [{ userId: undefined, memberId: undefined }, 'create-user'],
    [{ userId: 'USR-1', memberId: undefined }, 'join-member'],
    [{ userId: 'USR-1', memberId: 'MEM-1' }, 'done'],
  ] as const)('%j → %s', (mapping, step) => {
    expect(nextRoutingStep(mapping)).toBe(step);
  });
});

describe('names within Vonage\'s limits', () => {
  // Every id length the bridge accepts from WeChat, with the characters WeChat ids use and a few it might.
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-';
  const idOf = (length: number, seed: number) =>
    Array.from({ length }, (_, i) => (i % 97 === 96 ? '漢' : alphabet[(seed * 31 + i * 7) % alphabet.length])).join('');

  test('every name and display name fits, for any openid and account id length WeChat can produce', () => {
    const names = new Set<string>();
    for (let openidLength = 1; openidLength <= MAX_WECHAT_ID_LENGTH; openidLength += 1) {
      for (const accountLength of [1, 15, 40, MAX_WECHAT_ID_LENGTH]) {
        const route = { openid: idOf(openidLength, accountLength), account: `gh_${idOf(accountLength, openidLength)}`.slice(0, accountLength) };
        expect(conversationNameFor(route.openid).length).toBeLessThanOrEqual(VONAGE_NAME_MAX_CHARS);
        expect(userNameFor(route.openid).length).toBeLessThanOrEqual(VONAGE_NAME_MAX_CHARS);
        expect(conversationDisplayName(route).length).toBeGreaterThan(0);
        expect(conversationDisplayName(route).length).toBeLessThanOrEqual(VONAGE_DISPLAY_NAME_MAX_CHARS);
        expect(userDisplayName(route).length).toBeLessThanOrEqual(VONAGE_DISPLAY_NAME_MAX_CHARS);
        // Never a lone surrogate half.
        expect(conversationDisplayName(route)).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
      }
      names.add(conversationNameFor(idOf(openidLength, 0)));
    }
    // Distinct openids keep distinct names, even when the long ones are shortened.
    expect(names.size).toBe(MAX_WECHAT_ID_LENGTH);
    const long = 'o'.repeat(120);
    expect(conversationNameFor(long)).not.toBe(conversationNameFor(`${long.slice(0, 119)}p`));
  });

  test('real WeChat ids keep today\'s names: wechat:<openid>, wechat-<openid>', () => {
    const openid = 'oR951Sf36Z9ShAgUbBIDm8v7od6R';
    expect(conversationNameFor(openid)).toBe(`wechat:${openid}`);
    expect(userNameFor(openid)).toBe(`wechat-${openid}`);
  });
});

describe('createConversationRouter', () => {
  let vonage: VonageEmulator;
  let client: VonageClient;
  let store: SqliteStore;

  beforeEach(async () => {
    vonage = await startVonageEmulator({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: APP_ID });
    client = createVonageClient({
      baseUrl: vonage.baseUrl,
      tokenSource: createApplicationTokenSource({ applicationId: APP_ID, privateKey: testKeyPair().privateKeyPem }),
    });
    store = SqliteStore.open(':memory:');
  });
  afterEach(async () => {
    await store.close();
    await vonage.close();
  });

  const conversationsNamed = (name: string) => vonage.conversations().filter((c) => c.name === name);
  const membersOf = async (conversationId: string) => (await client.listMembers(conversationId)).items;

  test('a real 28-character openid with a 15-character original id gets its conversation (display name within 50)', async () => {
    const router = createConversationRouter({ directory: client, store });
    const route = { openid: 'oR951Sf36Z9ShAgUbBIDm8v7od6R', account: 'gh_3f2a1b4c5d6e' };
    const resolved = await router.resolve(route);
    const [conversation] = conversationsNamed(`wechat:${route.openid}`);
    expect(conversation).toMatchObject({ id: resolved.conversationId, display_name: `${route.openid} · ${route.account}` });
  });

  test('first contact makes the conversation, the user and the joined member; later calls reuse them', async () => {
    const router = createConversationRouter({ directory: client, store });
    const first = await router.resolve(ROUTE);
    const [conversation, ...others] = conversationsNamed(conversationNameFor(ROUTE.openid));
    expect(others).toEqual([]);
    expect(conversation).toMatchObject({ id: first.conversationId, display_name: `${ROUTE.openid} · ${ROUTE.account}` });
    expect(await membersOf(first.conversationId)).toEqual([{ id: first.memberId, userId: expect.stringMatching(/^USR-/), state: 'JOINED' }]);
    expect(await client.findUserByName(userNameFor(ROUTE.openid))).toBeDefined();
    await expect(store.getConversationMapping(ROUTE.openid)).resolves.toMatchObject({ conversationId: first.conversationId, memberId: first.memberId });

    const requests = vonage.requests;
    await expect(router.resolve(ROUTE)).resolves.toEqual(first);
    expect(vonage.requests).toBe(requests); // from the store, no remote call
  });

  test('ten concurrent first contacts in one process, and two processes at once, end with one conversation', async () => {
    const one = createConversationRouter({ directory: client, store });
    const other = createConversationRouter({ directory: client, store }); // another instance on the same database
    const results = await Promise.all(Array.from({ length: 10 }, (_, n) => (n % 2 === 0 ? one : other).resolve(ROUTE)));
    expect(new Set(results.map((r) => r.conversationId)).size).toBe(1);
    expect(new Set(results.map((r) => r.memberId)).size).toBe(1);
    expect(conversationsNamed(conversationNameFor(ROUTE.openid))).toHaveLength(1);
    expect(await membersOf(results[0]!.conversationId)).toHaveLength(1);
  });

  test('a crash after Vonage made the conversation and the user, before the store knew: both are adopted', async () => {
    const made = await client.createConversation({ name: conversationNameFor(ROUTE.openid) });
    const user = await client.createUser({ name: userNameFor(ROUTE.openid) });
    // Older conversations of other users, so the lookup pages (newest first).
    for (let n = 0; n < 5; n += 1) await client.createConversation({ name: `wechat:other-${n}` });

    const resolved = await createConversationRouter({ directory: client, store }).resolve(ROUTE);
    expect(resolved.conversationId).toBe(made.id);
    expect(conversationsNamed(conversationNameFor(ROUTE.openid))).toHaveLength(1);
    expect(await membersOf(made.id)).toEqual([expect.objectContaining({ id: resolved.memberId, userId: user.id })]);
  });

  test('a crash after the store recorded the conversation and user resumes with the member only', async () => {
    const made = await client.createConversation({ name: conversationNameFor(ROUTE.openid) });
    const user = await client.createUser({ name: userNameFor(ROUTE.openid) });
    await store.saveConversationMapping({ openid: ROUTE.openid, conversationId: made.id, userId: user.id });
    const before = vonage.traffic.recent().length;

    const resolved = await createConversationRouter({ directory: client, store }).resolve(ROUTE);
    expect(resolved.conversationId).toBe(made.id);
    const calls = vonage.traffic.recent().slice(before).map((t) => `${t.method} ${t.path.split('?')[0]}`);
    expect(calls).toEqual([`POST /v1/conversations/${made.id}/members`]);
  });

  test('a member joined before the crash is adopted, not joined twice', async () => {
    const made = await client.createConversation({ name: conversationNameFor(ROUTE.openid) });
    const user = await client.createUser({ name: userNameFor(ROUTE.openid) });
    const member = await client.createMember(made.id, { userId: user.id });
    await store.saveConversationMapping({ openid: ROUTE.openid, conversationId: made.id, userId: user.id });

    await expect(createConversationRouter({ directory: client, store }).resolve(ROUTE)).resolves.toEqual({ conversationId: made.id, memberId: member.id });
    expect(await membersOf(made.id)).toHaveLength(1);
  });

  test('a taken name that cannot be found within the lookup budget fails for good, with the reason', async () => {
    await client.createConversation({ name: conversationNameFor(ROUTE.openid) });
    for (let n = 0; n < 3; n += 1) await client.createConversation({ name: `wechat:newer-${n}` });
    const router = createConversationRouter({ directory: { ...client, listConversations: (o) => client.listConversations({ ...o, pageSize: 2 }) }, store, maxLookupPages: 1 });
    const error = await router.resolve(ROUTE).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermanentError);
    expect((error as PermanentError).code).toBe('conversation:error:duplicate-name');
    await expect(store.getConversationMapping(ROUTE.openid)).resolves.toBeUndefined();
  });
});
