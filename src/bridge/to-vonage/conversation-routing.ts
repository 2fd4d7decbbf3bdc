/**
 * Per-user conversation mode (`VONAGE_CONVERSATION_ID` unset): every WeChat user gets a Vonage
 * conversation of their own, named `wechat:<openid>`, with a Vonage user standing for them and that
 * user's joined member, which is the `from` of their inbound events.
 *
 * Routing runs in the `deliver-to-vonage` worker, never on the webhook path: WeChat wants its answer
 * within 5 s and Vonage may be down, so the inbound job carries only the openid (`WeChatUserRoute`)
 * and the conversation is found, or made, when the job runs.
 *
 * Making one takes three remote calls (conversation, user, member) and none of them is idempotent.
 * Why there is still one conversation per user, whatever happens:
 *
 * - Concurrency: all jobs of one WeChat user share an order key (`wechat:<openid>`), so the store
 *   runs them one at a time, across every instance on the database: two first messages at once are
 *   routed one after the other, and the second finds the first one's mapping. (An in-process
 *   single flight per openid guards callers outside the queue.)
 * - Crashes: the store's mapping row records each call's result as soon as it comes
 *   (conversation created → user created → member joined), so a run after a crash resumes at the
 *   first step that has no result, instead of starting over.
 * - The remaining window, a crash after Vonage created something and before the store recorded it:
 *   the retry's create then fails because the name is taken (409 `conversation:error:duplicate-name`,
 *   likewise for the user; "already a member" for the member), and the router looks the existing one
 *   up and adopts it. v1 cannot filter conversations by name, so that lookup pages through
 *   `GET /conversations`, newest first, which is why it is only the fallback.
 * - The store keeps the first conversation recorded for an openid (first writer wins), so even two
 *   writers racing past all of the above converge on one.
 */
import * as crypto from 'node:crypto';
import { accountUserKey, DEFAULT_ACCOUNT_ID, isDefaultAccount } from '../../accounts';
import { PermanentError } from '../../errors';
import type { Logger } from '../../logger';
import type { ConversationMapping, ConversationMappings } from '../../store/store';
import { clipChars } from '../../values';
import type { WeChatUserRoute } from '../jobs';
import type { ConversationDirectory } from '../ports';

/**
 * Vonage's limits on what the bridge names (Conversation API v1: conversation and user
 * `name` at most 100 characters, `display_name` at most 50). WeChat's openids are 28 characters and
 * original ids 15, but the bridge accepts ids up to MAX_WECHAT_ID_LENGTH, so every name is fitted.
 */
export const VONAGE_NAME_MAX_CHARS = 100;
export const VONAGE_DISPLAY_NAME_MAX_CHARS = 50;

/**
 * A unique name within `max` characters: `prefix + id` as it is whenever it fits (so existing
 * conversations keep their names), else a stable digest-suffixed form that no other id shares.
 */
function uniqueName(prefix: string, id: string, max: number): string {
  const plain = `${prefix}${id}`;
  if (plain.length <= max) return plain;
  const digest = crypto.createHash('sha256').update(id, 'utf8').digest('hex').slice(0, 32);
  return `${prefix}${clipChars(id, max - prefix.length - digest.length - 1, '')}~${digest}`;
}

/**
 * The conversation of a WeChat user (Vonage keeps names unique): `wechat:<openid>` for the default
 * account (the name conversations had before accounts existed), `wechat:<id>:<openid>` for others.
 */
export const conversationNameFor = (openid: string, accountId: string = DEFAULT_ACCOUNT_ID): string =>
  uniqueName('wechat:', accountUserKey(accountId, openid), VONAGE_NAME_MAX_CHARS);
/** The Vonage user standing for a WeChat user (unique per application, like the conversation name). */
export const userNameFor = (openid: string, accountId: string = DEFAULT_ACCOUNT_ID): string =>
  uniqueName(isDefaultAccount(accountId) ? 'wechat-' : `wechat-${accountId}-`, openid, VONAGE_NAME_MAX_CHARS);

/** The store's key of a route's mapping (accounts.ts `accountUserKey`). */
const mappingKeyOf = (route: WeChatUserRoute): string => accountUserKey(route.accountId ?? DEFAULT_ACCOUNT_ID, route.openid);

/** The first candidate that fits Vonage's display-name limit, else the last one clipped. */
function firstFitting(candidates: string[]): string {
  const fitting = candidates.find((candidate) => candidate.length <= VONAGE_DISPLAY_NAME_MAX_CHARS);
  return fitting ?? clipChars(candidates.at(-1)!, VONAGE_DISPLAY_NAME_MAX_CHARS);
}

/** What an agent's UI shows for the conversation: the account and the user it is with, as much as fits. */
export function conversationDisplayName(route: WeChatUserRoute): string {
  return firstFitting([`WeChat ${route.openid} · ${route.account}`, `${route.openid} · ${route.account}`, `WeChat ${route.openid}`]);
}

export function userDisplayName(route: WeChatUserRoute): string {
  return firstFitting([`WeChat user ${route.openid}`, `WeChat ${route.openid}`]);
}

/** The next remote call a mapping needs, read from which ids it has. Pure. */
export type RoutingStep = 'create-conversation' | 'create-user' | 'join-member' | 'done';

export function nextRoutingStep(mapping: Pick<ConversationMapping, 'userId' | 'memberId'> | undefined): RoutingStep {
  if (mapping === undefined) return 'create-conversation';
  if (mapping.userId === undefined) return 'create-user';
  if (mapping.memberId === undefined) return 'join-member';
  return 'done';
}

/** A duplicate-name refusal of a create (the thing exists already, made by an earlier run). */
export function isDuplicateName(error: unknown): boolean {
  return error instanceof PermanentError && typeof error.code === 'string' && /duplicate-name|already-exists/.test(error.code);
}

export interface ResolvedConversation {
  conversationId: string;
  /** The WeChat user's member: the `from` of their events. */
  memberId: string;
}

export interface ConversationRouter {
  /** The user's conversation and member, made (or adopted) on first contact. */
  resolve(route: WeChatUserRoute): Promise<ResolvedConversation>;
}

export interface ConversationRouterDeps {
  directory: ConversationDirectory;
  store: Pick<ConversationMappings, 'getConversationMapping' | 'saveConversationMapping'>;
  logger?: Logger;
  /** Pages of 100 conversations read, newest first, when looking for one by name. Default 50. */
  maxLookupPages?: number;
}

const PAGE_SIZE = 100;

export function createConversationRouter(deps: ConversationRouterDeps): ConversationRouter {
  const { directory, store, logger } = deps;
  const maxLookupPages = deps.maxLookupPages ?? 50;
  const inFlight = new Map<string, Promise<ResolvedConversation>>();

  async function findConversationByName(name: string): Promise<string | undefined> {
    let cursor: string | undefined;
    for (let page = 0; page < maxLookupPages; page += 1) {
      const result = await directory.listConversations({ pageSize: PAGE_SIZE, order: 'desc', cursor });
      const found = result.items.find((conversation) => conversation.name === name);
      if (found) return found.id;
      if (result.nextCursor === undefined) return undefined;
      cursor = result.nextCursor;
    }
    return undefined;
  }

  async function createConversation(route: WeChatUserRoute): Promise<string> {
    const name = conversationNameFor(route.openid, route.accountId);
    try {
      const created = await directory.createConversation({
        name,
        displayName: conversationDisplayName(route),
        properties: {
          custom_data: { wechat_openid: route.openid, wechat_account: route.account, ...(route.accountId ? { wechat_account_id: route.accountId } : {}) },
        },
      });
      logger?.info({ openid: route.openid, conversationId: created.id }, 'created the conversation of a WeChat user');
      return created.id;
    } catch (error) {
      if (!isDuplicateName(error)) throw error;
      const existing = await findConversationByName(name);
      if (existing === undefined) {
        throw new PermanentError(
          `conversation ${name} exists in Vonage but was not among the newest ${maxLookupPages * PAGE_SIZE} conversations; ` +
            'it cannot be adopted automatically',
          { code: 'conversation:error:duplicate-name' },
        );
      }
      logger?.warn({ openid: route.openid, conversationId: existing }, 'adopted an existing conversation (an earlier run was interrupted)');
      return existing;
    }
  }

  async function createUser(route: WeChatUserRoute): Promise<string> {
    const name = userNameFor(route.openid, route.accountId);
    try {
      return (await directory.createUser({ name, displayName: userDisplayName(route) })).id;
    } catch (error) {
      if (!(error instanceof PermanentError)) throw error;
      // Most likely the name is taken by an earlier, interrupted run: adopt that user.
      const existing = await directory.findUserByName(name);
      if (existing === undefined) throw error;
      logger?.warn({ openid: route.openid, userId: existing.id }, 'adopted an existing Vonage user (an earlier run was interrupted)');
      return existing.id;
    }
  }

  async function findMember(conversationId: string, userId: string): Promise<string | undefined> {
    let cursor: string | undefined;
    for (let page = 0; page < maxLookupPages; page += 1) {
      const result = await directory.listMembers(conversationId, { pageSize: PAGE_SIZE, cursor });
      const found = result.items.find((member) => member.userId === userId);
      if (found) return found.id;
      if (result.nextCursor === undefined) return undefined;
      cursor = result.nextCursor;
    }
    return undefined;
  }

  async function joinMember(openid: string, conversationId: string, userId: string): Promise<string> {
    try {
      return (await directory.createMember(conversationId, { userId })).id;
    } catch (error) {
      if (!(error instanceof PermanentError)) throw error;
      // Most likely "already a member", joined by an earlier, interrupted run: adopt that member.
      const existing = await findMember(conversationId, userId);
      if (existing === undefined) throw error;
      logger?.warn({ openid, conversationId, memberId: existing }, 'adopted an existing member (an earlier run was interrupted)');
      return existing;
    }
  }

  async function resolveOnce(route: WeChatUserRoute): Promise<ResolvedConversation> {
    const key = mappingKeyOf(route);
    let mapping = await store.getConversationMapping(key);
    // Three steps; a few more only if another writer's row replaced ours in between.
    for (let round = 0; round < 8; round += 1) {
      const step = nextRoutingStep(mapping);
      switch (step) {
        case 'create-conversation': {
          const conversationId = await createConversation(route);
          // The answer is the row as stored: another writer's conversation, if it got there first.
          mapping = await store.saveConversationMapping({ openid: key, conversationId });
          break;
        }
        case 'create-user': {
          const { conversationId } = mapping!;
          const userId = await createUser(route);
          mapping = await store.saveConversationMapping({ openid: key, conversationId, userId });
          break;
        }
        case 'join-member': {
          const { conversationId, userId } = mapping!;
          const memberId = await joinMember(route.openid, conversationId, userId!);
          mapping = await store.saveConversationMapping({ openid: key, conversationId, userId: userId!, memberId });
          break;
        }
        case 'done':
          return { conversationId: mapping!.conversationId, memberId: mapping!.memberId! };
      }
    }
    throw new Error(`routing the conversation of ${route.openid} did not settle`);
  }

  return {
    resolve(route) {
      const key = mappingKeyOf(route);
      const running = inFlight.get(key);
      if (running) return running;
      const started = resolveOnce(route).finally(() => inFlight.delete(key));
      inFlight.set(key, started);
      return started;
    },
  };
}
