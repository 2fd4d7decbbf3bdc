/**
 * What the bridge needs from the outside world, as small interfaces. The Vonage client
 * satisfies `ConversationBackend` structurally: when Vonage's Conversation API goes away,
 * another backend implements these few lines and nothing else in the bridge changes.
 */

export interface ConversationEvent {
  type: string;
  body: Record<string, unknown>;
  /** A member id, when the backend wants the event attributed to one. */
  from?: string;
}

export interface ConversationBackend {
  createEvent(conversationId: string, event: ConversationEvent): Promise<{ id: string }>;
  /**
   * A conversation's events, newest first, a page at a time: to tell whether a post that got no
   * answer went through. `timestamp` is epoch ms.
   */
  listRecentEvents(
    conversationId: string,
    options?: { pageSize?: number; eventType?: string; cursor?: string },
  ): Promise<{ events: Array<{ type: string; body: Record<string, unknown>; timestamp: number | undefined }>; nextCursor: string | undefined }>;
}

/** Job kinds, one handler each. */
export const JOB_DELIVER_TO_VONAGE = 'deliver-to-vonage';

/** The payload of a `deliver-to-vonage` job: one event, ready to post. */
export interface DeliverToVonagePayload {
  conversationId: string;
  event: ConversationEvent;
}

/** The custom event types the bridge reads from and writes to a conversation. */
export const WECHAT_TYPING_EVENT = 'custom:wechat:typing';
export const WECHAT_STATUS_EVENT = 'custom:wechat:status';

export const JOB_SEND_TO_WECHAT = 'send-to-wechat';
export const JOB_SEND_TYPING_TO_WECHAT = 'send-typing-to-wechat';

/**
 * The payload of a `send-to-wechat` or `send-typing-to-wechat` job: one outbound RTC event, as
 * received. The WeChat request is built when the job runs, so that a bad event becomes a `failed`
 * status in the conversation (where the agent sees it) rather than a 400 that Vonage cannot show.
 */
export interface OutboundEventPayload {
  conversationId: string;
  /** Vonage's event id (a string): `ref_event_id` of the status, and part of every dedup key. */
  eventId: string;
  /** The event body exactly as Vonage delivered it. */
  body: Record<string, unknown>;
}

/** The body of a `custom:wechat:status` event. */
export type WeChatStatusBody = {
  status: 'delivered' | 'failed';
  ref_event_id: string;
  /** The recipient openid as the event named it; empty when the event had none. */
  to: string;
  error_code?: string;
  error_message?: string;
};
