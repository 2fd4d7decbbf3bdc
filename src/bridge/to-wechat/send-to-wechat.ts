/**
 * The `send-to-wechat` job: one outbound `custom:wechat:message` event → one WeChat
 * customer-service message, and its outcome posted back to the conversation as a
 * `custom:wechat:status` event (a `deliver-to-vonage` job).
 *
 * At most once. A customer-service message must never reach the user twice, so:
 *
 * - Retryable failures (errcode -1, HTTP 5xx/429, a timeout before the request went out) are
 *   rethrown: the worker runs the same job again after a backoff, still first in the user's queue.
 * - Anything else ends the job with a `failed` status: WeChat's refusals (45015, 45047, 40003, …),
 *   an event we cannot turn into a WeChat message, and an UncertainDeliveryError (the request went
 *   out, no answer came back: WeChat may have delivered it, so it is not sent again).
 * - A crash is the remaining hazard: the process may die after WeChat accepted the message but
 *   before the job is recorded as done, and the job then runs again. Each run therefore records
 *   "attempt n is sending" (a seen key) before the request, and "attempt n did not send" after a
 *   retryable failure. A run that finds an earlier attempt that started sending and never said it
 *   failed does not send: it reports "failed: delivery uncertain" instead.
 * - The status job has a dedup key per outbound event, so a run after a crash between "status
 *   stored" and "job completed" adds nothing: the first status stands.
 *
 * - Template messages are the exception: WeChat sends one per (openid, client_msg_id) for 10
 *   minutes, and the bridge's client_msg_id is the event id, so within that time an interrupted run
 *   or an answer lost after the request went out is simply sent again.
 *
 * A free-form message also goes through the user's reply window (reply-window.ts): its status shows
 * the window after the send, and when the window is closed (known beforehand, or WeChat's 45015 or
 * 45047) the event's `fallback` template or notification goes instead, in the same attempt.
 *
 * A retryable failure that would outlive the worker's give-up deadline (24 h) ends the job with a
 * `failed` status instead, so that every outbound event gets a status even when WeChat is down.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { accountUserKey, DEFAULT_ACCOUNT_ID } from '../../accounts';
import { InvalidInputError, PermanentError, RetryableError } from '../../errors';
import { scrubSecrets, type Logger, type SecretScrubber } from '../../logger';
import { wasSeen, type JobQueue, type RememberedValues, type SeenKeys } from '../../store/store';
import { UncertainDeliveryError, type SendOptions, type WeChatApiClient as WeChatApi } from '../../wechat/api-client';
import { WeChatApiError } from '../../wechat/transport';
import { buildCustomSendBody } from '../../wechat/custom-message';
import {
  buildSubscribeSendBody,
  buildTemplateSendBody,
  fallbackOf,
  isNotificationType,
  TEMPLATE_MSG_TYPE,
  type NotificationKind,
} from '../../wechat/template-message';
import { DEFAULT_RETRY_POLICY, givesUpBeforeNextRun, giveUpAt, type RetryPolicy } from '../../queue/retry-policy';
import { statusJob, type SendOutcome, type StatusDetails } from './status';
import type { ReplyWindowTracker } from '../reply-window';
import { templateSendKey, TEMPLATE_REF_TTL_MS, type TemplateSendRef } from './template-result';
import type { BridgeMetrics } from '../../metrics';
import type { OutboundMedia } from '../media/outbound-media';
import { recipientFromBody, type RecipientResolver } from './recipient';
import type { JOB_SEND_TO_WECHAT, JobHandlerOf, JobOf, OutboundEventPayload } from '../jobs';
import type { PassiveReplies } from './passive-replies';
import { passiveReplyProblem } from '../../wechat/passive-reply';

/** What the handler sends with: customer-service messages, and (when given) templates and notifications. */
type WeChatSender = Pick<WeChatApi, 'sendCustomMessage'> & Partial<Pick<WeChatApi, 'sendTemplateMessage' | 'sendSubscribeMessage'>>;

export interface SendToWeChatDeps {
  weChat: WeChatSender;
  /**
   * Several accounts: the client and media uploader of the recipient's account (its own access
   * token: a message never leaves through another account). `weChat` and `media` when absent.
   */
  accountOf?: (accountId: string) => { weChat: WeChatSender; media?: OutboundMedia };
  store: Pick<JobQueue, 'enqueue'> & SeenKeys & Partial<Pick<RememberedValues, 'rememberValue'>>;
  /**
   * The users' reply windows (per account): a free-form send counts against it and its status shows
   * it, and a closed window sends the event's `fallback` instead. Without it, only WeChat decides.
   */
  replyWindows?: ReplyWindowTracker;
  logger: Logger;
  now?: () => number;
  /** The worker's retry policy: a send the worker would give up on ends with a `failed` status instead. Default DEFAULT_RETRY_POLICY. */
  retryPolicy?: RetryPolicy;
  /** Counts each outcome (delivered, or failed with its code). */
  metrics?: Pick<BridgeMetrics, 'delivered' | 'failed'> & Partial<Pick<BridgeMetrics, 'accountMessage'>>;
  /** Who the event is for: `body.to` (default, fixed mode) or the conversation's user (per-user mode). */
  recipientOf?: RecipientResolver;
  /** Turns a `media_url` into an uploaded `media_id` before the send (outbound-media.ts). */
  media?: OutboundMedia;
  /** Waits between tries to store the status of a delivered message. Default: a timer. */
  sleep?: (ms: number) => Promise<void>;
  /** Scrubs a remote's error text (WeChat may echo a token) before agents see it in the status. Default: scrubSecrets. */
  scrub?: SecretScrubber;
  /**
   * WECHAT_REPLY_MODE passive or auto: replies for a passive user are queued for their next push
   * instead of custom/send (passive-replies.ts). Absent: customer-service only.
   */
  passive?: Pick<PassiveReplies, 'isPassive' | 'switchesOn' | 'switchToPassive' | 'deposit'>;
}

/** error_code values of our own (WeChat's are its numeric errcodes, as strings). */
export const STATUS_CODES = {
  invalidEvent: 'invalid_event',
  missingRecipient: 'missing_to',
  uncertain: 'uncertain',
  retriesExhausted: 'retries_exhausted',
  internal: 'internal_error',
} as const;

/** Backoff while the store refuses the status of a delivered message: 100 ms doubling to 5 s. */
const RECORD_RETRY_FIRST_MS = 100;
const RECORD_RETRY_MAX_MS = 5_000;

/** Thrown by the "sending" marker write when another run of the same attempt already wrote it. */
class AttemptAlreadySending extends Error {}

const INTERRUPTED_MESSAGE =
  'delivery uncertain: the bridge stopped while this message was being sent, and it is not sent again to avoid a duplicate';

type SendJob = JobOf<typeof JOB_SEND_TO_WECHAT>;

export function createSendToWeChatHandler(deps: SendToWeChatDeps): JobHandlerOf<typeof JOB_SEND_TO_WECHAT> {
  const now = deps.now ?? Date.now;
  const retryPolicy = deps.retryPolicy ?? DEFAULT_RETRY_POLICY;
  const { store, logger } = deps;
  const scrub = deps.scrub ?? ((text: string) => scrubSecrets(text));
  const sleep = deps.sleep ?? ((ms: number) => delay(ms));

  const attemptKey = (payload: OutboundEventPayload, attempt: number, state: 'sending' | 'not-sent') =>
    `wechat-send:${payload.conversationId}:${payload.eventId}#${attempt}:${state}`;

  /**
   * Whether an earlier run of this job may have handed the message to WeChat. Walks back from the
   * latest run: a run that recorded "not sent" had itself checked the runs before it; a run that
   * recorded neither marker crashed before sending (and maybe before checking), so look further.
   */
  async function earlierRunMayHaveSent(payload: OutboundEventPayload, attempts: number): Promise<boolean> {
    for (let attempt = attempts - 1; attempt >= 0; attempt -= 1) {
      if (await wasSeen(store, attemptKey(payload, attempt, 'not-sent'))) return false;
      if (await wasSeen(store, attemptKey(payload, attempt, 'sending'))) return true;
    }
    return false;
  }

  /**
   * The user's window now: after a free-form send, for its status (every status of one, whatever its outcome);
   * left out when the store cannot tell now, or for a template or notification.
   */
  async function replyWindowNow(payload: OutboundEventPayload, openid: string | undefined, accountId: string): Promise<StatusDetails> {
    if (deps.replyWindows === undefined || openid === undefined || isNotificationType(payload.body['msg_type'])) return {};
    try {
      return { replyWindow: await deps.replyWindows.current(accountId, openid) };
    } catch (error) {
      logger.warn({ err: error, eventId: payload.eventId }, 'reply window unknown: the status goes without it');
      return {};
    }
  }

  /** `openid` and `accountId`: the recipient, once resolved (the status names it and shows its window). */
  async function report(job: SendJob, outcome: SendOutcome, openid?: string, accountId = DEFAULT_ACCOUNT_ID): Promise<void> {
    const { payload } = job;
    const withWindow: SendOutcome = { ...outcome, ...(await replyWindowNow(payload, openid, accountId)) };
    const shown: SendOutcome = withWindow.status === 'failed' ? { ...withWindow, errorMessage: scrub(withWindow.errorMessage) } : withWindow;
    const [result] = await store.enqueue([statusJob(payload, shown, openid)]);
    if (outcome.status === 'delivered') deps.metrics?.delivered('outbound', (now() - job.createdAt) / 1000);
    else deps.metrics?.failed('outbound', /^\d+$/.test(outcome.errorCode) ? 'wechat' : 'bridge', outcome.errorCode);
    const context = { conversationId: payload.conversationId, eventId: payload.eventId, status: outcome.status };
    if (result?.outcome === 'duplicate') {
      logger.info(context, 'outbound event already had a status; kept the first one');
    } else if (outcome.status === 'failed') {
      logger.warn({ ...context, errorCode: outcome.errorCode, reason: scrub(outcome.errorMessage) }, 'outbound message failed');
    } else {
      logger.debug(context, 'outbound message delivered to WeChat');
    }
  }

  /**
   * `report`, again and again until the store takes it. Once WeChat accepted a message, giving up
   * here would let the next run find the "sending" marker and call a delivered message uncertain.
   */
  async function reportUntilRecorded(job: SendJob, outcome: SendOutcome, openid?: string, accountId?: string): Promise<void> {
    await untilStored(job, () => report(job, outcome, openid, accountId), 'WeChat accepted the message but its status could not be stored; retrying');
  }

  /** A store write that must happen once WeChat accepted a message: tried again and again until it does. */
  async function untilStored(job: SendJob, write: () => Promise<void>, warning: string): Promise<void> {
    for (let failures = 0; ; failures += 1) {
      try {
        return await write();
      } catch (error) {
        const delayMs = Math.min(RECORD_RETRY_MAX_MS, RECORD_RETRY_FIRST_MS * 2 ** Math.min(failures, 16));
        const { conversationId, eventId } = job.payload;
        logger.warn({ conversationId, eventId, err: error, retryInMs: delayMs }, warning);
        await sleep(delayMs);
      }
    }
  }

  /** Whether the worker's deadline may come before it could run the job again. */
  const outlivesRetries = (job: SendJob, error: RetryableError): boolean =>
    givesUpBeforeNextRun(job.createdAt, error.retryAfterMs, now(), retryPolicy);

  return async function sendToWeChat(job) {
    const { payload } = job;
    // Markers outlive the job: it is dead-lettered by the worker at the latest at its give-up time.
    const markerExpiresAt = giveUpAt(job.createdAt, retryPolicy) + 60 * 60 * 1000;

    // First, so that every status names the user it is about, even in per-user mode.
    const recipient = await (deps.recipientOf ?? recipientFromBody)(payload);
    const resolvedTo = recipient.ok ? recipient.openid : undefined;

    // A template message carries the event id as client_msg_id: while WeChat honours it, sending
    // again after an interrupted run cannot show the user a second copy.
    const resendable = payload.body['msg_type'] === TEMPLATE_MSG_TYPE && now() - job.createdAt < CLIENT_MSG_ID_HONOURED_MS;
    if (job.attempts > 0 && !resendable && (await earlierRunMayHaveSent(payload, job.attempts))) {
      await report(job, { status: 'failed', errorCode: STATUS_CODES.uncertain, errorMessage: INTERRUPTED_MESSAGE }, resolvedTo, recipient.ok ? recipient.accountId : undefined);
      return;
    }

    if (!recipient.ok) {
      await report(job, { status: 'failed', errorCode: recipient.errorCode, errorMessage: recipient.errorMessage });
      return;
    }
    const to = recipient.openid;
    const account = recipient.accountId ?? DEFAULT_ACCOUNT_ID;
    const { weChat, media } =
      deps.accountOf && recipient.accountId !== undefined ? deps.accountOf(recipient.accountId) : { weChat: deps.weChat, media: deps.media };

    /** The user's passive-reply mailbox: one per account and openid. */
    const passiveUser = accountUserKey(account, to);
    let primary: PlannedSend;
    let fallback: PlannedSend | undefined;
    let body: Record<string, unknown> = payload.body;
    try {
      // Before the "sending" marker: nothing has gone to the user yet, so a retry here is safe.
      const msgType = payload.body['msg_type'];
      if (isNotificationType(msgType)) {
        primary = notificationSend(msgType, to, payload.body, payload.eventId, false);
      } else {
        body = media ? await media.prepare(payload.body) : payload.body;
        primary = { kind: 'custom', request: buildCustomSendBody({ to, body }) };
        const alternative = fallbackOf(payload.body);
        if (alternative !== undefined) fallback = notificationSend(alternative.msg_type, to, alternative, payload.eventId, true);
      }
    } catch (error) {
      // A bad event or refused media ends the job with a status; WeChat busy during the upload, or
      // anything unexpected (a store hiccup), is the worker's to retry.
      const endsHere =
        error instanceof InvalidInputError ||
        error instanceof PermanentError ||
        (error instanceof RetryableError && outlivesRetries(job, error));
      if (!endsHere) throw error;
      await report(job, failureOf(error, logger, payload, job.attempts), to, account);
      return;
    }

    /** Queues the reply for the user's next push; its status comes when a push is answered with it, or at its expiry. */
    const queuePassive = async (): Promise<void> => {
      const problem = passiveReplyProblem(body);
      if (problem !== undefined) {
        await report(job, { status: 'failed', errorCode: STATUS_CODES.invalidEvent, errorMessage: problem }, to);
        return;
      }
      await deps.passive!.deposit(passiveUser, { ...payload, body }, to);
    };
    // Template and subscription notifications have their own APIs: only customer-service messages become passive replies.
    if (deps.passive && primary.kind === 'custom' && (await deps.passive.isPassive(passiveUser))) return queuePassive();

    // "Sending" is recorded once the token is in hand, right before the request leaves: a crash or
    // a store error while the token is fetched or awaited leaves no marker, and the next run sends.
    let markedSending = false;
    const markSending = async (): Promise<void> => {
      if (!(await store.markSeen(attemptKey(payload, job.attempts, 'sending'), markerExpiresAt))) {
        throw new AttemptAlreadySending();
      }
      markedSending = true;
    };

    const windows = primary.kind === 'custom' ? deps.replyWindows : undefined;

    // The tracker knows the window is closed: the fallback goes instead, and the message is not tried.
    let chosen = primary;
    if (fallback !== undefined && (await replyWindowNow(payload, to, account)).replyWindow?.replies_left === 0) chosen = fallback;

    let delivered: StatusDetails | undefined;
    try {
      delivered = await send(weChat, chosen, { beforeRequest: markSending });
    } catch (error) {
      if (closesWindow(error) && windows !== undefined) await noteWindowClosed(windows, account, to, logger);
      if (!(closesWindow(error) && fallback !== undefined && chosen === primary)) return handleSendError(error);
      // WeChat refused the free-form message for the window: nothing reached the user, so the
      // fallback goes out in the same attempt (already marked as sending).
      try {
        delivered = await send(weChat, fallback, {});
      } catch (fallbackError) {
        return handleSendError(fallbackError);
      }
    }

    // WeChat has the message: its status must say so, whatever the store does meanwhile.
    if (chosen.kind === 'custom' && delivered.via === undefined && windows !== undefined) {
      await windows.used(account, to).catch((error: unknown) => logger.warn({ err: error }, 'reply window not counted: the store failed'));
    }
    deps.metrics?.accountMessage?.(account, 'outbound');
    await reportUntilRecorded(job, { status: 'delivered', ...delivered }, to, account);
    // Only now which event a template's msgid belongs to: WeChat's result, pushed meanwhile, waits
    // for it (template-result.ts), so that its status always comes after the `delivered` one.
    const msgId = delivered.msgId;
    if ((delivered.via ?? chosen.kind) === 'template' && msgId !== undefined && store.rememberValue !== undefined) {
      const ref: TemplateSendRef = { conversationId: payload.conversationId, eventId: payload.eventId, to };
      const remember = store.rememberValue.bind(store);
      await untilStored(job, () => remember(templateSendKey(account, msgId), ref, now() + TEMPLATE_REF_TTL_MS), 'template message id not stored yet; retrying');
    }

    async function handleSendError(error: unknown): Promise<void> {
      if (error instanceof UncertainDeliveryError && resendable && chosen === primary) {
        // No "not sent" marker: once client_msg_id expires, a later run must call it uncertain.
        throw new RetryableError(`${error.message}; a template message is sent again with the same client_msg_id`);
      }
      if (error instanceof AttemptAlreadySending) {
        // Another run of this very attempt got here first (a lease taken over): never send twice.
        await report(job, { status: 'failed', errorCode: STATUS_CODES.uncertain, errorMessage: INTERRUPTED_MESSAGE }, to, account);
        return;
      }
      if (error instanceof RetryableError) {
        // Nothing reached WeChat (or WeChat said so): safe to try again, unless time is up.
        if (outlivesRetries(job, error)) {
          await report(job, failureOf(error, logger, payload, job.attempts), to, account);
          return;
        }
        if (markedSending) await store.markSeen(attemptKey(payload, job.attempts, 'not-sent'), markerExpiresAt);
        throw error;
      }
      if (error instanceof PermanentError && chosen.kind === 'custom' && deps.passive?.switchesOn(error.code)) {
        // The account has no customer-service API: WeChat refused, nothing went out (recorded, so
        // that a run after a crash here queues the reply instead of calling it uncertain).
        if (markedSending) await store.markSeen(attemptKey(payload, job.attempts, 'not-sent'), markerExpiresAt);
        await deps.passive.switchToPassive(passiveUser);
        return queuePassive();
      }
      // Before the marker nothing went out: a refusal (bad AppSecret…) ends the job, anything else
      // (a store hiccup while fetching the token or writing the marker) is the worker's to retry.
      if (!markedSending && !(error instanceof PermanentError)) throw error;
      await report(job, failureOf(error, logger, payload), to, account);
    }
  };

  /** One planned request to its API; resolves with WeChat's msgid where it gives one. */
  async function send(weChat: WeChatSender, planned: PlannedSend, options: SendOptions): Promise<StatusDetails> {
    if (planned.kind === 'custom') {
      await weChat.sendCustomMessage(planned.request, options);
      return {};
    }
    const api = planned.kind === 'template' ? weChat.sendTemplateMessage?.bind(weChat) : weChat.sendSubscribeMessage?.bind(weChat);
    if (api === undefined) throw new PermanentError(`${planned.kind} messages are not available in this bridge`, { code: STATUS_CODES.internal });
    const { msgId } = await api(planned.request, options);
    return { ...(msgId !== undefined ? { msgId } : {}), ...(planned.fallback ? { via: planned.kind } : {}) };
  }
}

/** A request ready for one of WeChat's send APIs. `fallback`: it stands in for a free-form message. */
interface PlannedSend {
  kind: 'custom' | NotificationKind;
  request: Record<string, unknown>;
  fallback?: boolean;
}

/**
 * A template message or subscription notification. A template's `client_msg_id` is the outbound
 * event id, so that WeChat never sends the same event twice.
 */
function notificationSend(kind: NotificationKind, to: string, body: Record<string, unknown>, eventId: string, fallback: boolean): PlannedSend {
  return kind === 'template'
    ? { kind, request: buildTemplateSendBody({ to, body, clientMsgId: eventId }), fallback }
    : { kind, request: buildSubscribeSendBody({ to, body }), fallback };
}

/**
 * How long after the event's job was stored a template may be sent again: WeChat sends one message
 * per (openid, client_msg_id) for 10 minutes; a minute is kept for clocks and the request's own time.
 */
const CLIENT_MSG_ID_HONOURED_MS = 9 * 60 * 1000;

/** WeChat's answers meaning the reply window is closed (45015) or its quota used up (45047). */
const WINDOW_CLOSED_ERRCODES: ReadonlySet<number> = new Set([45015, 45047]);

const closesWindow = (error: unknown): boolean => error instanceof WeChatApiError && WINDOW_CLOSED_ERRCODES.has(error.errcode);

async function noteWindowClosed(windows: ReplyWindowTracker, account: string, openid: string, logger: Logger): Promise<void> {
  try {
    await windows.close(account, openid);
  } catch (error) {
    logger.warn({ err: error }, 'reply window not marked closed: the store failed');
  }
}


/**
 * The failed status for an error that ends the job. Permanent errors carry WeChat's errcode (or
 * `uncertain`, `http_4xx`) as `code`; their message starts with it, which the status does not repeat.
 */
function failureOf(error: unknown, logger: Logger, payload: OutboundEventPayload, attempts?: number): SendOutcome {
  if (error instanceof RetryableError) {
    return { status: 'failed', errorCode: STATUS_CODES.retriesExhausted, errorMessage: `gave up after ${(attempts ?? 0) + 1} attempts: ${error.message}` };
  }
  if (error instanceof PermanentError) {
    const errorCode = error.code ?? STATUS_CODES.internal;
    const errorMessage = error.message.startsWith(`${errorCode} `) ? error.message.slice(errorCode.length + 1) : error.message;
    return { status: 'failed', errorCode, errorMessage };
  }
  if (error instanceof InvalidInputError) {
    return { status: 'failed', errorCode: STATUS_CODES.invalidEvent, errorMessage: error.message };
  }
  // A bug, not a WeChat answer. Whether the request went out is unknown: do not send again.
  logger.error(
    { conversationId: payload.conversationId, eventId: payload.eventId, error: error instanceof Error ? error.message : String(error) },
    'unexpected error while sending to WeChat',
  );
  return { status: 'failed', errorCode: STATUS_CODES.internal, errorMessage: 'internal error while sending; not sent again' };
}
