/**
 * Turns an accepted WeChat message into the jobs that deliver it: one `deliver-to-vonage` job per
 * event part, all ordered behind the same WeChat user, the first carrying the message's dedup key.
 *
 * The jobs are stored in one transaction, so a message is either fully queued or not at all; a
 * WeChat retry of the same message finds its dedup key and stores nothing.
 */
import { accountScopedKey, DEFAULT_ACCOUNT_ID, isDefaultAccount } from '../../accounts';
import type { WeChatMessage } from '../../wechat/message';
import { weChatDedupKey } from '../../wechat/message';
import { WECHAT_MESSAGE_EVENT } from '../custom-events';
import { JOB_DELIVER_TO_VONAGE, newJob, weChatUserOrderKey, type DeliverToVonagePayload, type NewJobOf } from '../jobs';
import { toInboundEventBodies, VONAGE_BODY_LIMIT_BYTES, type InboundBodyOptions } from './event-body';
import { REPLY_WINDOW_BODY_BYTES, replyWindowGrantOf } from '../reply-window';

/**
 * Where the message goes: one fixed conversation (`VONAGE_CONVERSATION_ID`), or (undefined) the
 * sender's own conversation, resolved by the worker when the job runs (conversation-routing.ts).
 */
export interface InboundTarget {
  conversationId: string | undefined;
  /** The configured id of the account that received the message. Default `default`. */
  accountId?: string;
}

export interface InboundJobOptions extends InboundBodyOptions {
  /** Epoch ms the message was received (the reply window opens no later). Default: now. */
  receivedAt?: number;
}

/**
 * Every job also carries the message's effect on the sender's reply window (per account); the
 * window itself is added to the body when the job runs, so each part keeps room for it within
 * Vonage's limit.
 */
export function inboundJobs(message: WeChatMessage, target: InboundTarget, options: InboundJobOptions = {}): Array<NewJobOf<typeof JOB_DELIVER_TO_VONAGE>> {
  const accountId = target.accountId ?? DEFAULT_ACCOUNT_ID;
  // Two accounts may share a follower's openid only by chance, but their MsgIds are independent.
  const dedupKey = accountScopedKey(accountId, weChatDedupKey(message));
  const grant = replyWindowGrantOf(message, options.receivedAt ?? Date.now());
  const replyWindow = { account: accountId, openid: message.fromUserName, ...(grant ? { grant } : {}) };
  const { receivedAt: _receivedAt, ...bodyOptions } = options;
  return toInboundEventBodies(message, VONAGE_BODY_LIMIT_BYTES - REPLY_WINDOW_BODY_BYTES, { ...bodyOptions, accountId }).map((body, index) => {
    const event = { type: WECHAT_MESSAGE_EVENT, body };
    const payload: DeliverToVonagePayload =
      target.conversationId !== undefined
        ? { conversationId: target.conversationId, event, replyWindow }
        : {
            route: { openid: message.fromUserName, account: message.toUserName, ...(isDefaultAccount(accountId) ? {} : { accountId }) },
            event,
            replyWindow,
          };
    return newJob(JOB_DELIVER_TO_VONAGE, {
      orderKey: weChatUserOrderKey(message.fromUserName, accountId),
      payload,
      dedupKey: `${dedupKey}#${index}`,
    });
  });
}
