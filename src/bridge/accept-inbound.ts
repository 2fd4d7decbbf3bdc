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

/** Per-user order: every job about one WeChat user waits for the previous one. */
export const weChatUserOrderKey = (openid: string): string => `wechat:${openid}`;

/**
 * Where the message goes: one fixed conversation (`VONAGE_CONVERSATION_ID`), or (undefined) the
 * sender's own conversation, resolved by the worker when the job runs (conversation-routing.ts).
 */
export interface InboundTarget {
  conversationId: string | undefined;
}

export function inboundJobs(message: WeChatMessage, target: InboundTarget, options: InboundBodyOptions = {}): NewJob[] {
  const dedupKey = weChatDedupKey(message);
  return toInboundEventBodies(message, VONAGE_BODY_LIMIT_BYTES, options).map((body, index) => {
    const event = { type: WECHAT_MESSAGE_EVENT, body };
    const payload: DeliverToVonagePayload =
      target.conversationId !== undefined
        ? { conversationId: target.conversationId, event }
        : { route: { openid: message.fromUserName, account: message.toUserName }, event };
    return {
      kind: JOB_DELIVER_TO_VONAGE,
      orderKey: weChatUserOrderKey(message.fromUserName),
      payload,
      dedupKey: `${dedupKey}#${index}`,
    };
  });
}
