/**
 * The custom events the bridge posts to and reads from a conversation, both directions.
 */

/** A WeChat user's message (`direction: inbound`), or an agent's message for WeChat (`direction: outbound`). */
export const WECHAT_MESSAGE_EVENT = 'custom:wechat:message';
/** An agent's typing indicator for WeChat. */
export const WECHAT_TYPING_EVENT = 'custom:wechat:typing';
/** The outcome of an outbound message. */
export const WECHAT_STATUS_EVENT = 'custom:wechat:status';

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
  /** Set when the message did not go by custom/send: its fallback went instead (the reply window was closed), or `passive` (the answer to a push). */
  via?: 'template' | 'subscribe' | 'passive';
  /** The user's reply window after a free-form send. */
  reply_window?: { closes_at: number; replies_left: number };
};
