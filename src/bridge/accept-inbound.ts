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
import { toInboundEventBodies, WECHAT_MESSAGE_EVENT } from './inbound';
import { JOB_DELIVER_TO_VONAGE, type DeliverToVonagePayload } from './ports';

/** Per-user order: every job about one WeChat user waits for the previous one. */
export const weChatUserOrderKey = (openid: string): string => `wechat:${openid}`;

export function inboundJobs(message: WeChatMessage, target: { conversationId: string }): NewJob[] {
  const dedupKey = weChatDedupKey(message);
  return toInboundEventBodies(message).map((body, index) => {
    const payload: DeliverToVonagePayload = {
      conversationId: target.conversationId,
      event: { type: WECHAT_MESSAGE_EVENT, body },
    };
    return {
      kind: JOB_DELIVER_TO_VONAGE,
      orderKey: weChatUserOrderKey(message.fromUserName),
      payload,
      dedupKey: `${dedupKey}#${index}`,
    };
  });
}
