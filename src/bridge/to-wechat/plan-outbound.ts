/**
 * Vonage RTC event → what the bridge does about it. Pure: values in, values out.
 *
 * The RTC webhook receives every event of the application (member:*, message*, rtc:*, audio:*,
 * the bridge's own inbound events echoed back, its own status events…). Only two kinds are acted on:
 *
 * - `custom:wechat:message` with `body.direction === 'outbound'`: a customer-service message for WeChat;
 * - `custom:wechat:typing` (any direction but `inbound`): a typing indicator.
 *
 * Everything else plans nothing, so the webhook answers 200 and stores nothing. The echo of our own
 * inbound event carries `direction: 'inbound'` and is therefore never sent back to WeChat.
 */
import { DEFAULT_ACCOUNT_ID, type Account } from '../../accounts';
import type { RtcEvent } from '../../vonage/webhook';
import { WECHAT_MESSAGE_EVENT, WECHAT_TYPING_EVENT } from '../custom-events';
import { JOB_SEND_TO_WECHAT, JOB_SEND_TYPING_TO_WECHAT, newJob, weChatUserOrderKey, type NewJobOf, type OutboundEventPayload } from '../jobs';
import { outboundRecipient, sharedConversationAccount } from './recipient';

/** The jobs an RTC event may become. */
type OutboundJobKind = typeof JOB_SEND_TO_WECHAT | typeof JOB_SEND_TYPING_TO_WECHAT;

/** Each RTC event is acted on once: Vonage's event ids are per conversation. */
export const rtcEventDedupKey = (conversationId: string, eventId: string): string => `rtc:${conversationId}:${eventId}`;

export interface PlanOptions {
  /** Per-user conversation mode: each conversation is one WeChat user's (`to` may be omitted). */
  perUserConversations?: boolean;
  /**
   * Every configured account: a shared conversation's event is ordered behind its recipient of its
   * account (recipient.ts `sharedConversationAccount`), a per-user conversation's behind the
   * conversation. Supersedes `perUserConversations`.
   */
  accounts?: readonly Account[];
}

/** The account of a shared conversation's event, when the webhook can tell it without the store. */
function sharedAccountId(event: RtcEvent, options: PlanOptions): string | undefined {
  if (options.accounts === undefined) return options.perUserConversations ? undefined : DEFAULT_ACCOUNT_ID;
  const shared = sharedConversationAccount(options.accounts, event.conversationId, event.body);
  return shared?.ok ? shared.accountId : undefined;
}

/**
 * The job for an RTC event, or undefined when the bridge ignores it.
 *
 * Order: a message or typing indicator for a WeChat user runs in that user's queue (the same key
 * the inbound path uses), so one user's outbound messages reach WeChat in the order Vonage sent
 * them. An event without `to` cannot be sent; it still gets a job, whose run reports the failure
 * as a status event in its conversation.
 *
 * In per-user mode a conversation is one user's, so its queue is the user's outbound queue: every
 * outbound event of the conversation runs in order behind the previous one, whether it names `to`
 * or leaves it to the conversation (decided here without a store read: the webhook stays pure).
 */
export function planOutbound(event: RtcEvent, options: PlanOptions = {}): NewJobOf<OutboundJobKind> | undefined {
  const kind = outboundJobKind(event);
  if (kind === undefined) return undefined;
  const to = outboundRecipient(event.body);
  const payload: OutboundEventPayload = { conversationId: event.conversationId, eventId: event.id, body: event.body };
  const accountId = sharedAccountId(event, options);
  return newJob(kind, {
    orderKey: to !== undefined && accountId !== undefined ? weChatUserOrderKey(to, accountId) : `conversation:${event.conversationId}`,
    payload,
    dedupKey: rtcEventDedupKey(event.conversationId, event.id),
  });
}

/**
 * Whether a payload `parseRtcEvent` could not read may be one the bridge acts on, judged on what it
 * has: not an object or no `type` (not an RTC event at all), a message or typing event whose body is
 * not an object (its direction is unknown), or one whose `type` and `body.direction` plan a job.
 */
export function mayActOn(json: unknown): boolean {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return true;
  const { type, body } = json as Record<string, unknown>;
  if (typeof type !== 'string' || type === '') return true;
  const bodyIsObject = typeof body === 'object' && body !== null && !Array.isArray(body);
  if (!bodyIsObject) return type === WECHAT_MESSAGE_EVENT || type === WECHAT_TYPING_EVENT;
  return jobKindFor(type, (body as Record<string, unknown>)['direction']) !== undefined;
}

function outboundJobKind(event: RtcEvent): OutboundJobKind | undefined {
  return jobKindFor(event.type, event.body['direction']);
}

function jobKindFor(type: string, direction: unknown): OutboundJobKind | undefined {
  switch (type) {
    case WECHAT_MESSAGE_EVENT:
      // Strict: only an explicit `outbound`. Anything else may be our own inbound event coming back.
      return direction === 'outbound' ? JOB_SEND_TO_WECHAT : undefined;
    case WECHAT_TYPING_EVENT:
      // Agents' typing events need no direction; the bridge never emits typing events itself.
      return direction === undefined || direction === 'outbound' ? JOB_SEND_TYPING_TO_WECHAT : undefined;
    default:
      return undefined;
  }
}
