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
   * A conversation's events, newest first (or oldest first from `startId` with `order: 'asc'`), a
   * page at a time: to tell whether a post that got no answer went through. `timestamp` is epoch ms.
   */
  listRecentEvents(
    conversationId: string,
    options?: { pageSize?: number; eventType?: string; cursor?: string; startId?: string; order?: 'asc' | 'desc' },
  ): Promise<{
    events: Array<{ id: string; type: string; body: Record<string, unknown>; timestamp: number | undefined }>;
    nextCursor: string | undefined;
  }>;
}

/** A page of a list, with the cursor of the next page (undefined on the last). */
export interface Page<T> {
  items: T[];
  nextCursor: string | undefined;
}

/**
 * What per-user conversation mode needs from the backend: conversations, users and members, made
 * once per WeChat user. Creates report a taken name as a PermanentError whose `code` says so (409);
 * the lookups let the caller find what an earlier, interrupted run already made.
 */
export interface ConversationDirectory {
  createConversation(input: { name: string; displayName?: string; properties?: Record<string, unknown> }): Promise<{ id: string }>;
  listConversations(options: { pageSize?: number; cursor?: string; order?: 'asc' | 'desc' }): Promise<Page<{ id: string; name: string }>>;
  createUser(input: { name: string; displayName?: string }): Promise<{ id: string }>;
  findUserByName(name: string): Promise<{ id: string } | undefined>;
  createMember(conversationId: string, input: { userId: string }): Promise<{ id: string }>;
  listMembers(conversationId: string, options: { pageSize?: number; cursor?: string }): Promise<Page<{ id: string; userId: string | undefined }>>;
}

/** Job kinds, one handler each. */
export const JOB_DELIVER_TO_VONAGE = 'deliver-to-vonage';

/** Where an inbound event goes in per-user mode: the WeChat user's own conversation, found or made when the job runs. */
export interface WeChatUserRoute {
  /** FromUserName. */
  openid: string;
  /** ToUserName: the account's original id (`gh_…`), for the conversation's display name. */
  account: string;
  /** The configured account id; absent for the `default` account (and in jobs stored before accounts existed). */
  accountId?: string;
}

/**
 * The payload of a `deliver-to-vonage` job: one event, ready to post, to a known conversation
 * (fixed mode, and every status event) or to the sender's own conversation (`route`, per-user mode).
 * Exactly one of `conversationId` and `route` is set.
 */
export interface DeliverToVonagePayload {
  conversationId?: string;
  route?: WeChatUserRoute;
  event: ConversationEvent;
  /**
   * An inbound message's effect on the user's reply window (reply-window.ts): applied when the job
   * runs, and the window then stamped on the event body as `reply_window`.
   */
  replyWindow?: InboundReplyWindow;
}

/** Whose reply window an inbound event touches, and how (`grant` absent: it only shows the window). */
export interface InboundReplyWindow {
  account: string;
  openid: string;
  grant?: { kind: 'message' | 'interaction'; openedAt: number } | { kind: 'close' };
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
  /** WeChat's msgid of a template message or subscription notification. */
  msg_id?: string;
  /** Set when the outbound message's fallback went instead (the reply window was closed). */
  via?: 'template' | 'subscribe';
  /** The user's reply window after a free-form send. */
  reply_window?: { closes_at: number; replies_left: number };
};
