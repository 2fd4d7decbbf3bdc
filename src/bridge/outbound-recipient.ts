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
import type { Store } from '../store/store';
import { outboundRecipient } from './outbound';
import type { OutboundEventPayload } from './ports';

export type Recipient = { ok: true; openid: string } | { ok: false; errorCode: string; errorMessage: string };

export type RecipientResolver = (payload: Pick<OutboundEventPayload, 'conversationId' | 'body'>) => Promise<Recipient>;

/** error_code values of the refusals (beside send-to-wechat's own). */
export const RECIPIENT_STATUS_CODES = {
  missingRecipient: 'missing_to',
  unknownConversation: 'unknown_conversation',
  recipientMismatch: 'recipient_mismatch',
} as const;

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
export function recipientFromConversation(store: Pick<Store, 'findConversationMapping'>): RecipientResolver {
  return async (payload) => {
    const mapping = await store.findConversationMapping(payload.conversationId);
    if (mapping === undefined) {
      return {
        ok: false,
        errorCode: RECIPIENT_STATUS_CODES.unknownConversation,
        errorMessage: `conversation ${payload.conversationId} is not the conversation of a WeChat user (the bridge did not create it), so there is nobody to send to`,
      };
    }
    const to = outboundRecipient(payload.body);
    if (to !== undefined && to !== mapping.openid) {
      return {
        ok: false,
        errorCode: RECIPIENT_STATUS_CODES.recipientMismatch,
        errorMessage: '`to` names another WeChat user than this conversation\'s: omit `to`, or post in that user\'s conversation',
      };
    }
    return { ok: true, openid: mapping.openid };
  };
}
