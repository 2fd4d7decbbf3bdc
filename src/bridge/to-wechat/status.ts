/**
 * The outcome of an outbound event, posted back to its conversation as a `custom:wechat:status`
 * event (a `deliver-to-vonage` job). Pure: values in, values out.
 */
import { clipChars } from '../../values';
import { WECHAT_STATUS_EVENT, type WeChatStatusBody } from '../custom-events';
import { JOB_DELIVER_TO_VONAGE, newJob, type DeliverToVonagePayload, type NewJobOf, type OutboundEventPayload } from '../jobs';
import { outboundRecipient } from './recipient';

/** One status per outbound event, however often its job runs. */
export const statusDedupKey = (conversationId: string, eventId: string): string => `status:${conversationId}:${eventId}`;

/** Longest `error_message` we post: the whole status body stays far below Vonage's 4096 bytes. */
const MAX_ERROR_MESSAGE_CHARS = 1000;

/** What a status may add: WeChat's msgid, the fallback that went instead, the reply window after a free-form send. */
export interface StatusDetails {
  msgId?: string;
  /** The channel that carried it when not custom/send: a fallback (`template`, `subscribe`) or `passive` (a push's answer). */
  via?: 'template' | 'subscribe' | 'passive';
  replyWindow?: { closes_at: number; replies_left: number };
}

export type SendOutcome = ({ status: 'delivered' } | { status: 'failed'; errorCode: string; errorMessage: string }) & StatusDetails;

/** The one later status per outbound template message: WeChat's TEMPLATESENDJOBFINISH result. */
export const templateResultDedupKey = (conversationId: string, eventId: string): string => `template-result:${conversationId}:${eventId}`;

/**
 * The `deliver-to-vonage` job that posts the outcome of an outbound event to its conversation.
 *
 * Statuses have their own per-user order key: a Vonage outage delays the statuses, never the
 * user's next WeChat sends. The dedup key makes the status unique per outbound event, so a job that
 * runs again after a crash cannot post a second, contradicting status. `recipient` is the openid the
 * send was resolved to, when it was (per-user events may not name it in `body.to`).
 */
export function statusJob(
  payload: OutboundEventPayload,
  outcome: SendOutcome,
  recipient?: string,
  dedupKey = statusDedupKey(payload.conversationId, payload.eventId),
): NewJobOf<typeof JOB_DELIVER_TO_VONAGE> {
  // Per-user mode: the event may omit `to`, the recipient is the conversation's own user.
  const to = recipient ?? outboundRecipient(payload.body);
  const body: WeChatStatusBody = { status: outcome.status, ref_event_id: payload.eventId, to: to ?? '' };
  if (outcome.status === 'failed') {
    body.error_code = outcome.errorCode;
    body.error_message = clipChars(outcome.errorMessage, MAX_ERROR_MESSAGE_CHARS);
  }
  if (outcome.msgId !== undefined) body.msg_id = outcome.msgId;
  if (outcome.via !== undefined) body.via = outcome.via;
  if (outcome.replyWindow !== undefined) body.reply_window = outcome.replyWindow;
  const deliver: DeliverToVonagePayload = {
    conversationId: payload.conversationId,
    event: { type: WECHAT_STATUS_EVENT, body },
  };
  return newJob(JOB_DELIVER_TO_VONAGE, {
    orderKey: to !== undefined ? `wechat-status:${to}` : `conversation-status:${payload.conversationId}`,
    payload: deliver,
    dedupKey,
  });
}

