/**
 * Fixed or per-user conversations, decided per account by its configuration. Pure.
 *
 * - Fixed: the account names a conversation (its `conversationId`, or `VONAGE_CONVERSATION_ID`), and
 *   every WeChat user of the account writes into that one conversation.
 * - Per-user: it names none, and each WeChat user gets a Vonage conversation of their own, found or
 *   made when the user's first job runs (conversation-routing.ts).
 */
import type { Account } from '../../accounts';
import type { InboundTarget } from './inbound-jobs';

export type ConversationMode = 'fixed' | 'per-user';

export const conversationModeOf = (account: Pick<Account, 'conversationId'>): ConversationMode =>
  account.conversationId === undefined ? 'per-user' : 'fixed';

/** Whether any account has per-user conversations: the delivery worker then needs a conversation router. */
export const routesConversations = (accounts: ReadonlyArray<Pick<Account, 'conversationId'>>): boolean =>
  accounts.some((account) => conversationModeOf(account) === 'per-user');

/** Where an account's inbound messages go: its fixed conversation, or (undefined) each sender's own. */
export const inboundTargetOf = (account: Pick<Account, 'id' | 'conversationId'>): InboundTarget => ({
  conversationId: account.conversationId,
  accountId: account.id,
});

/** The start-up line about an account's mode, and the fields it is logged with. */
export function describeConversationMode(account: Pick<Account, 'id' | 'appId' | 'conversationId'>): {
  fields: Record<string, string>;
  message: string;
} {
  const fields = { account: account.id, appId: account.appId };
  if (account.conversationId === undefined) {
    return { fields, message: 'per-user conversations: each WeChat user of the account gets a Vonage conversation of their own' };
  }
  return {
    fields: { ...fields, conversationId: account.conversationId },
    message: 'fixed conversation: every WeChat user of the account in one conversation',
  };
}
