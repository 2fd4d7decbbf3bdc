/**
 * The `send-typing-to-wechat` job: one `custom:wechat:typing` event (`{"to","command"}`) →
 * `POST /cgi-bin/message/custom/typing`.
 *
 * Best effort, on purpose: a typing indicator lasts 15 s on WeChat and needs a user interaction in
 * the last 30 s, so one shown minutes later after a backoff would be wrong, and an agent has no use
 * for a status about it. Every failure (bad event, WeChat refusal, WeChat down) is logged and the job
 * ends; no status event is posted. The access-token refetch on 40001/40014/42001 still happens
 * inside the client. The job runs in the user's queue, so a Typing never overtakes the message it
 * announces, nor a CancelTyping the Typing before it.
 */
import { accountUserKey, DEFAULT_ACCOUNT_ID } from '../../accounts';
import { InvalidInputError } from '../../errors';
import type { Logger } from '../../logger';
import type { WeChatApiClient } from '../../wechat/api-client';
import { buildTypingBody, type TypingCommand } from '../../wechat/custom-message';
import { recipientFromBody, type RecipientResolver } from './recipient';
import type { JOB_SEND_TYPING_TO_WECHAT, JobHandlerOf } from '../jobs';

export interface SendTypingToWeChatDeps {
  weChat: Pick<WeChatApiClient, 'sendTyping'>;
  /** Several accounts: the client of the recipient's account (its access token); `weChat` when absent. */
  accountOf?: (accountId: string) => { weChat: Pick<WeChatApiClient, 'sendTyping'> };
  logger: Logger;
  /** Who the indicator is for: `body.to` (default, fixed mode) or the conversation's user (per-user mode). */
  recipientOf?: RecipientResolver;
  /** Whether the user (`accountUserKey`) gets passive replies: then there is no customer-service API to show typing with. */
  isPassive?: (user: string) => Promise<boolean>;
}

export function createSendTypingToWeChatHandler(deps: SendTypingToWeChatDeps): JobHandlerOf<typeof JOB_SEND_TYPING_TO_WECHAT> {
  return async function sendTypingToWeChat({ payload }) {
    const context = { conversationId: payload.conversationId, eventId: payload.eventId };

    let request: Record<string, unknown>;
    let weChat = deps.weChat;
    let user: string;
    try {
      const recipient = await (deps.recipientOf ?? recipientFromBody)(payload);
      if (!recipient.ok) throw new InvalidInputError(400, recipient.errorMessage);
      if (deps.accountOf && recipient.accountId !== undefined) weChat = deps.accountOf(recipient.accountId).weChat;
      request = buildTypingBody(recipient.openid, payload.body['command'] as TypingCommand);
      user = accountUserKey(recipient.accountId ?? DEFAULT_ACCOUNT_ID, recipient.openid);
    } catch (error) {
      if (!(error instanceof InvalidInputError)) throw error;
      deps.logger.warn({ ...context, reason: error.message }, 'typing event ignored');
      return;
    }

    if (deps.isPassive && (await deps.isPassive(user))) {
      deps.logger.debug(context, 'typing indicator not sent: this user gets passive replies (no customer-service API)');
      return;
    }
    try {
      await weChat.sendTyping(request);
    } catch (error) {
      deps.logger.warn(
        { ...context, error: error instanceof Error ? error.message : String(error) },
        'typing indicator not shown (not retried)',
      );
    }
  };
}
