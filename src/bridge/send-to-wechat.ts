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
 * A retryable failure that would outlive the worker's give-up deadline (24 h) ends the job with a
 * `failed` status instead, so that every outbound event gets a status even when WeChat is down.
 */
import { DEFAULT_ACCOUNT_ID } from '../accounts';
import { InvalidInputError, PermanentError, RetryableError } from '../errors';
import { scrubSecrets, type Logger, type SecretScrubber } from '../logger';
import { wasSeen, type Job, type Store } from '../store/store';
import type { WeChatApiClient } from '../wechat/api-client';
import { buildCustomSendBody } from '../wechat/custom-message';
import { statusJob, type SendOutcome } from './outbound';
import type { BridgeMetrics } from '../metrics';
import type { OutboundMedia } from './outbound-media';
import { recipientFromBody, type RecipientResolver } from './outbound-recipient';
import type { OutboundEventPayload } from './ports';

export interface SendToWeChatDeps {
  weChat: Pick<WeChatApiClient, 'sendCustomMessage'>;
  /**
   * Several accounts: the client and media uploader of the recipient's account (its own access
   * token: a message never leaves through another account). `weChat` and `media` when absent.
   */
  accountOf?: (accountId: string) => { weChat: Pick<WeChatApiClient, 'sendCustomMessage'>; media?: OutboundMedia };
  store: Pick<Store, 'enqueue' | 'markSeen'>;
  logger: Logger;
  now?: () => number;
  /** Must equal the worker's give-up time. Default 24 h. */
  giveUpAfterMs?: number;
  /** The longest backoff the worker waits between two runs. Default 5 min. */
  maxRetryDelayMs?: number;
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

export function createSendToWeChatHandler(deps: SendToWeChatDeps) {
  const now = deps.now ?? Date.now;
  const giveUpAfterMs = deps.giveUpAfterMs ?? 24 * 60 * 60 * 1000;
  const maxRetryDelayMs = deps.maxRetryDelayMs ?? 300_000;
  const { store, logger } = deps;
  const scrub = deps.scrub ?? ((text: string) => scrubSecrets(text));
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));

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

  async function report(job: Job, outcome: SendOutcome, openid?: string): Promise<void> {
    const payload = job.payload as OutboundEventPayload;
    const shown: SendOutcome = outcome.status === 'failed' ? { ...outcome, errorMessage: scrub(outcome.errorMessage) } : outcome;
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
  async function reportUntilRecorded(job: Job, outcome: SendOutcome, openid?: string): Promise<void> {
    for (let failures = 0; ; failures += 1) {
      try {
        await report(job, outcome, openid);
        return;
      } catch (error) {
        const delayMs = Math.min(RECORD_RETRY_MAX_MS, RECORD_RETRY_FIRST_MS * 2 ** Math.min(failures, 16));
        const { conversationId, eventId } = job.payload as OutboundEventPayload;
        logger.warn(
          { conversationId, eventId, err: error, retryInMs: delayMs },
          'WeChat accepted the message but its status could not be stored; retrying',
        );
        await sleep(delayMs);
      }
    }
  }

  /** Whether the worker's deadline comes before it could run the job again (plus a minute of slack for clock reads). */
  const givesUpBeforeNextRun = (job: Job, error: RetryableError): boolean =>
    now() + Math.max(error.retryAfterMs ?? 0, maxRetryDelayMs) + 60_000 > job.createdAt + giveUpAfterMs;

  return async function sendToWeChat(job: Job): Promise<void> {
    const payload = job.payload as OutboundEventPayload;
    // Markers outlive the job: it is dead-lettered by the worker at the latest createdAt + giveUp.
    const markerExpiresAt = job.createdAt + giveUpAfterMs + 60 * 60 * 1000;

    // First, so that every status names the user it is about, even in per-user mode.
    const recipient = await (deps.recipientOf ?? recipientFromBody)(payload);
    const resolvedTo = recipient.ok ? recipient.openid : undefined;

    if (job.attempts > 0 && (await earlierRunMayHaveSent(payload, job.attempts))) {
      await report(job, { status: 'failed', errorCode: STATUS_CODES.uncertain, errorMessage: INTERRUPTED_MESSAGE }, resolvedTo);
      return;
    }

    if (!recipient.ok) {
      await report(job, { status: 'failed', errorCode: recipient.errorCode, errorMessage: recipient.errorMessage });
      return;
    }
    const to = recipient.openid;
    const { weChat, media } =
      deps.accountOf && recipient.accountId !== undefined ? deps.accountOf(recipient.accountId) : { weChat: deps.weChat, media: deps.media };

    let request: Record<string, unknown>;
    try {
      // Before the "sending" marker: nothing has gone to the user yet, so a retry here is safe.
      const body = media ? await media.prepare(payload.body) : payload.body;
      request = buildCustomSendBody({ to, body });
    } catch (error) {
      // A bad event or refused media ends the job with a status; WeChat busy during the upload, or
      // anything unexpected (a store hiccup), is the worker's to retry.
      const endsHere =
        error instanceof InvalidInputError ||
        error instanceof PermanentError ||
        (error instanceof RetryableError && givesUpBeforeNextRun(job, error));
      if (!endsHere) throw error;
      await report(job, failureOf(error, logger, payload, job.attempts), to);
      return;
    }

    // "Sending" is recorded once the token is in hand, right before the request leaves: a crash or
    // a store error while the token is fetched or awaited leaves no marker, and the next run sends.
    let markedSending = false;
    const markSending = async (): Promise<void> => {
      if (!(await store.markSeen(attemptKey(payload, job.attempts, 'sending'), markerExpiresAt))) {
        throw new AttemptAlreadySending();
      }
      markedSending = true;
    };

    try {
      await weChat.sendCustomMessage(request, { beforeRequest: markSending });
    } catch (error) {
      if (error instanceof AttemptAlreadySending) {
        // Another run of this very attempt got here first (a lease taken over): never send twice.
        await report(job, { status: 'failed', errorCode: STATUS_CODES.uncertain, errorMessage: INTERRUPTED_MESSAGE }, to);
        return;
      }
      if (error instanceof RetryableError) {
        // Nothing reached WeChat (or WeChat said so): safe to try again, unless time is up.
        if (givesUpBeforeNextRun(job, error)) {
          await report(job, {
            status: 'failed',
            errorCode: STATUS_CODES.retriesExhausted,
            errorMessage: `gave up after ${job.attempts + 1} attempts: ${error.message}`,
          }, to);
          return;
        }
        if (markedSending) await store.markSeen(attemptKey(payload, job.attempts, 'not-sent'), markerExpiresAt);
        throw error;
      }
      // Before the marker nothing went out: a refusal (bad AppSecret…) ends the job, anything else
      // (a store hiccup while fetching the token or writing the marker) is the worker's to retry.
      if (!markedSending && !(error instanceof PermanentError)) throw error;
      await report(job, failureOf(error, logger, payload), to);
      return;
    }

    // WeChat has the message: its status must say so, whatever the store does meanwhile.
    deps.metrics?.accountMessage?.(recipient.accountId ?? DEFAULT_ACCOUNT_ID, 'outbound');
    await reportUntilRecorded(job, { status: 'delivered' }, to);
  };
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
