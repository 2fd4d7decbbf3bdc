/**
 * WeChat's TEMPLATESENDJOBFINISH push → the second `custom:wechat:status` of a template message.
 *
 * `template/send` answers as soon as WeChat queued the message (the first status, `delivered` with
 * WeChat's msgid); WeChat then pushes an event with the same MsgID and the result in `Status`:
 * `success`, `failed:user block` (the user refused template messages from the account) or
 * `failed: system failed`. The send remembers which outbound event each msgid belongs to
 * (`templateSendKey`), and the `report-template-result` job turns the push into a status for that
 * event, once (its own dedup key per outbound event).
 */
import { RetryableError } from '../../errors';
import type { Logger } from '../../logger';
import type { JobQueue, RememberedValues } from '../../store/store';
import type { WeChatMessage } from '../../wechat/message';
import { weChatDedupKey } from '../../wechat/message';
import { DEFAULT_ACCOUNT_ID } from '../../accounts';
import { JOB_REPORT_TEMPLATE_RESULT, newJob, type JobHandlerOf, type NewJobOf, type TemplateResultPayload } from '../jobs';
import { statusJob, templateResultDedupKey, type SendOutcome } from './status';

/** How long a msgid is remembered: WeChat's result push comes within seconds or minutes. */
export const TEMPLATE_REF_TTL_MS = 3 * 24 * 60 * 60 * 1000;

/**
 * The result job first runs this long after the push: WeChat pushes right after answering the send,
 * and the send records its msgid only after its `delivered` status (send-to-wechat.ts).
 */
const FIRST_LOOKUP_DELAY_MS = 2_000;
/** A msgid still unknown is looked up again (every 10 s) for this long, then taken as another system's. */
const EARLY_PUSH_GRACE_MS = 30_000;
const LOOKUP_RETRY_MS = 10_000;

/** Which outbound event a template message was sent for. */
export interface TemplateSendRef {
  conversationId: string;
  eventId: string;
  /** The openid the message went to. */
  to: string;
}

export const templateSendKey = (account: string, msgId: string): string => `wechat-template:${account}:${msgId}`;

const isTemplateResult = (message: WeChatMessage): boolean =>
  message.msgType === 'event' && (message.event ?? '').toUpperCase() === 'TEMPLATESENDJOBFINISH';

/** The job for a TEMPLATESENDJOBFINISH push, or undefined for any other message. */
export function templateResultJob(message: WeChatMessage, receivedAt: number, accountId = DEFAULT_ACCOUNT_ID): NewJobOf<typeof JOB_REPORT_TEMPLATE_RESULT> | undefined {
  if (!isTemplateResult(message) || message.msgId === undefined) return undefined;
  const payload: TemplateResultPayload = {
    account: accountId,
    msgId: message.msgId,
    result: message.fields['status'] ?? '',
    openid: message.fromUserName,
  };
  // A queue of its own: a result waiting for its send to be recorded never holds up the user's statuses.
  return newJob(JOB_REPORT_TEMPLATE_RESULT, {
    orderKey: `wechat-template-result:${message.fromUserName}`,
    payload,
    dedupKey: weChatDedupKey(message),
    runAt: receivedAt + FIRST_LOOKUP_DELAY_MS,
  });
}

/**
 * WeChat's result as an outcome: `success` is delivered; a failure keeps WeChat's words as the
 * message and a snake_case code of them (`failed:user block` → `user_block`).
 */
export function templateResultOutcome(result: string): SendOutcome {
  const text = result.trim();
  if (text.toLowerCase() === 'success') return { status: 'delivered' };
  const reason = text.replace(/^failed\s*:\s*/i, '').trim();
  const errorCode = reason.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '') || 'failed';
  const explained = errorCode === 'user_block' ? ': the user has refused template messages from this account' : '';
  return { status: 'failed', errorCode, errorMessage: `WeChat reported "${text}"${explained}` };
}

export function createReportTemplateResultHandler(deps: {
  store: Pick<JobQueue, 'enqueue'> & Pick<RememberedValues, 'recallValue'>;
  logger: Logger;
  now?: () => number;
}): JobHandlerOf<typeof JOB_REPORT_TEMPLATE_RESULT> {
  const now = deps.now ?? Date.now;
  return async function reportTemplateResult(job) {
    const { payload } = job;
    const ref = (await deps.store.recallValue(templateSendKey(payload.account, payload.msgId))) as TemplateSendRef | undefined;
    if (ref === undefined) {
      if (now() < job.createdAt + EARLY_PUSH_GRACE_MS) {
        throw new RetryableError('template result pushed before its send was recorded; looking again shortly', { retryAfterMs: LOOKUP_RETRY_MS });
      }
      deps.logger.info({ msgId: payload.msgId, result: payload.result }, 'template result for a message the bridge did not send; ignored');
      return;
    }
    if (ref.to !== payload.openid) {
      // A msgid is the account's, but the push names another user: not the message we sent.
      deps.logger.warn({ msgId: payload.msgId }, 'template result names another user than the message was sent to; ignored');
      return;
    }
    const outbound = { conversationId: ref.conversationId, eventId: ref.eventId, body: {} };
    const outcome = { ...templateResultOutcome(payload.result), msgId: payload.msgId };
    await deps.store.enqueue([statusJob(outbound, outcome, ref.to, templateResultDedupKey(ref.conversationId, ref.eventId))]);
  };
}
