/**
 * Who an outbound event is for.
 *
 * - Fixed mode (`VONAGE_CONVERSATION_ID` set): every WeChat user shares one conversation, so the
 *   event must name its recipient in `body.to`.
 * - Per-user mode: the conversation is the user's own (the store maps it back to the openid), so
 *   `body.to` may be omitted. When it is given it must name that same user: a conversation never
 *   sends to someone else's WeChat. An event in a conversation the bridge did not make for a WeChat
 *   user has nobody to go to, and fails with a status saying so rather than silently.
 */
import { DEFAULT_ACCOUNT_ID, parseAccountUserKey, type Account } from '../../accounts';
import type { ConversationMappings } from '../../store/store';
import type { OutboundEventPayload } from '../jobs';

/** `accountId`: the configured id of the account that sends (its access token); `default` when the resolver does not know several. */
export type Recipient = { ok: true; openid: string; accountId?: string } | { ok: false; errorCode: string; errorMessage: string };

export type RecipientResolver = (payload: Pick<OutboundEventPayload, 'conversationId' | 'body'>) => Promise<Recipient>;

/** error_code values of the refusals (beside send-to-wechat's own). */
export const RECIPIENT_STATUS_CODES = {
  missingRecipient: 'missing_to',
  unknownConversation: 'unknown_conversation',
  recipientMismatch: 'recipient_mismatch',
  missingAccount: 'missing_account',
  unknownAccount: 'unknown_account',
  accountMismatch: 'account_mismatch',
} as const;

type Refusal = Extract<Recipient, { ok: false }>;

/** The recipient openid named by an outbound body, if it names one. */
export function outboundRecipient(body: Record<string, unknown>): string | undefined {
  const to = body['to'];
  return typeof to === 'string' && to.trim() !== '' ? to : undefined;
}

/** The account named by an outbound body (`body.account`), if it names one. */
export function outboundAccount(body: Record<string, unknown>): string | undefined {
  const account = body['account'];
  return typeof account === 'string' && account.trim() !== '' ? account : undefined;
}

/**
 * The account of an outbound event in a shared (fixed) conversation. Pure, so that the webhook can
 * order the job by it. Several accounts on one conversation: `body.account` must say which; one
 * account: `body.account` may be omitted. With no per-user account configured, every conversation
 * counts as shared by all accounts (a single fixed-mode account sends whatever conversation the
 * event came from, as it always did). Undefined: the conversation is nobody's shared conversation.
 */
export function sharedConversationAccount(
  accounts: readonly Account[],
  conversationId: string,
  body: Record<string, unknown>,
): { ok: true; accountId: string } | Refusal | undefined {
  const fixed = accounts.filter((a) => a.conversationId === conversationId);
  const sharing = fixed.length > 0 ? fixed : accounts.every((a) => a.conversationId !== undefined) ? accounts : [];
  if (sharing.length === 0) return undefined;
  const named = outboundAccount(body);
  if (named !== undefined) {
    if (sharing.some((a) => a.id === named)) return { ok: true, accountId: named };
    return accounts.some((a) => a.id === named)
      ? { ok: false, errorCode: RECIPIENT_STATUS_CODES.accountMismatch, errorMessage: `\`account\` ${named} does not use this conversation: post in that account's conversation` }
      : { ok: false, errorCode: RECIPIENT_STATUS_CODES.unknownAccount, errorMessage: `\`account\` names no configured account (${sharing.map((a) => a.id).join(', ')} use this conversation)` };
  }
  if (sharing.length === 1) return { ok: true, accountId: sharing[0]!.id };
  return {
    ok: false,
    errorCode: RECIPIENT_STATUS_CODES.missingAccount,
    errorMessage: `\`account\` is missing: several accounts share this conversation (${sharing.map((a) => a.id).join(', ')}); name the one to send from in \`account\``,
  };
}

/**
 * Who an outbound event is for, and from which account, over every configured account: a shared
 * conversation's event names its recipient (`to`) and, when several accounts share it, its account;
 * a per-user conversation's event goes to that conversation's user through the account that user wrote to.
 */
export function createRecipientResolver(accounts: readonly Account[], store: Pick<ConversationMappings, 'findConversationMapping'>): RecipientResolver {
  const perUser = recipientFromConversation(store, (id) => accounts.some((a) => a.id === id));
  return async (payload) => {
    const shared = sharedConversationAccount(accounts, payload.conversationId, payload.body);
    if (shared !== undefined) {
      if (!shared.ok) return shared;
      const recipient = await recipientFromBody(payload);
      return recipient.ok ? { ...recipient, accountId: shared.accountId } : recipient;
    }
    const recipient = await perUser(payload);
    if (!recipient.ok) return recipient;
    const accountId = recipient.accountId ?? DEFAULT_ACCOUNT_ID;
    if (!accounts.some((a) => a.id === accountId)) {
      return { ok: false, errorCode: RECIPIENT_STATUS_CODES.unknownAccount, errorMessage: `this conversation belongs to account ${accountId}, which is not configured any more` };
    }
    const named = outboundAccount(payload.body);
    if (named !== undefined && named !== accountId) {
      return { ok: false, errorCode: RECIPIENT_STATUS_CODES.accountMismatch, errorMessage: `\`account\` names another account than this conversation's (${accountId}): omit it, or post in a conversation of that account` };
    }
    return recipient;
  };
}

/** Fixed mode: `body.to`, required. */
export const recipientFromBody: RecipientResolver = async (payload) => {
  const to = outboundRecipient(payload.body);
  if (to !== undefined) return { ok: true, openid: to };
  return {
    ok: false,
    errorCode: RECIPIENT_STATUS_CODES.missingRecipient,
    errorMessage: '`to` is missing: in a shared conversation the event body must name the recipient openid in `to`',
  };
};

/** Per-user mode: the conversation's own WeChat user. */
export function recipientFromConversation(
  store: Pick<ConversationMappings, 'findConversationMapping'>,
  /** Whether an id is a configured account (the others' mapping keys are `<id>:<openid>`). */
  isAccount: (id: string) => boolean = () => true,
): RecipientResolver {
  return async (payload) => {
    const mapping = await store.findConversationMapping(payload.conversationId);
    if (mapping === undefined) {
      return {
        ok: false,
        errorCode: RECIPIENT_STATUS_CODES.unknownConversation,
        errorMessage: `conversation ${payload.conversationId} is not the conversation of a WeChat user (the bridge did not create it), so there is nobody to send to`,
      };
    }
    const { accountId, openid } = parseAccountUserKey(mapping.openid, isAccount);
    const to = outboundRecipient(payload.body);
    if (to !== undefined && to !== openid) {
      return {
        ok: false,
        errorCode: RECIPIENT_STATUS_CODES.recipientMismatch,
        errorMessage: '`to` names another WeChat user than this conversation\'s: omit `to`, or post in that user\'s conversation',
      };
    }
    return { ok: true, openid, accountId };
  };
}
