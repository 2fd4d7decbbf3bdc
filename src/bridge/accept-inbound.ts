/**
 * Turns an accepted WeChat message into the jobs that deliver it: one `deliver-to-vonage` job per
 * event part, all ordered behind the same WeChat user, the first carrying the message's dedup key.
 *
 * The jobs are stored in one transaction, so a message is either fully queued or not at all; a
 * WeChat retry of the same message finds its dedup key and stores nothing.
 */
import type { NewJob } from '../store/store';
import type { WeChatMessage } from '../wechat/message';
import { weChatDedupKey } from '../wechat/message';
import { toInboundEventBodies, VONAGE_BODY_LIMIT_BYTES, WECHAT_MESSAGE_EVENT, type InboundBodyOptions } from './inbound';
import { JOB_DELIVER_TO_VONAGE, type DeliverToVonagePayload } from './ports';
import { DEFAULT_ACCOUNT_ID, REPLY_WINDOW_BODY_BYTES, replyWindowGrantOf } from './reply-window';

/** Per-user order: every job about one WeChat user waits for the previous one. */
export const weChatUserOrderKey = (openid: string): string => `wechat:${openid}`;

/**
 * Where the message goes: one fixed conversation (`VONAGE_CONVERSATION_ID`), or (undefined) the
 * sender's own conversation, resolved by the worker when the job runs (conversation-routing.ts).
 */
export interface InboundTarget {
  conversationId: string | undefined;
}

export interface InboundJobOptions extends InboundBodyOptions {
  /** Epoch ms the message was received (the reply window opens no later). Default: now. */
  receivedAt?: number;
  /** Whose reply windows these are (several Official Accounts). Default `default`. */
  accountId?: string;
}

/**
 * Every job also carries the message's effect on the sender's reply window; the window itself is
 * added to the body when the job runs, so each part keeps room for it within Vonage's limit.
 */
export function inboundJobs(message: WeChatMessage, target: InboundTarget, options: InboundJobOptions = {}): NewJob[] {
  const dedupKey = weChatDedupKey(message);
  const grant = replyWindowGrantOf(message, options.receivedAt ?? Date.now());
  const replyWindow = { account: options.accountId ?? DEFAULT_ACCOUNT_ID, openid: message.fromUserName, ...(grant ? { grant } : {}) };
  const bodyOptions: InboundBodyOptions = options.mediaUrl ? { mediaUrl: options.mediaUrl } : {};
  return toInboundEventBodies(message, VONAGE_BODY_LIMIT_BYTES - REPLY_WINDOW_BODY_BYTES, bodyOptions).map((body, index) => {
    const event = { type: WECHAT_MESSAGE_EVENT, body };
    const payload: DeliverToVonagePayload =
      target.conversationId !== undefined
        ? { conversationId: target.conversationId, event, replyWindow }
        : { route: { openid: message.fromUserName, account: message.toUserName }, event, replyWindow };
    return {
      kind: JOB_DELIVER_TO_VONAGE,
      orderKey: weChatUserOrderKey(message.fromUserName),
      payload,
      dedupKey: `${dedupKey}#${index}`,
    };
  });
}
