/**
 * Every job kind the bridge stores, the payload each one carries, and the typed doors in and out of
 * the queue: `newJob` builds a job whose payload matches its kind, `registerJobHandlers` hands the
 * worker one handler per kind, each receiving its job already typed.
 *
 * The store keeps payloads opaque (JSON it knows nothing about) and the worker runs a job by its
 * kind; the type of a payload is a promise kept by `newJob` when the job was made. Nothing checks it
 * again at run time on purpose: a job stored by an earlier version keeps running as it always did
 * (the payload types say which fields such jobs may lack).
 */
import { accountUserKey, DEFAULT_ACCOUNT_ID } from '../accounts';
import type { JobHandler } from '../queue/worker';
import type { Job, NewJob } from '../store/store';
import type { ConversationEvent } from './ports';

export const JOB_DELIVER_TO_VONAGE = 'deliver-to-vonage';
export const JOB_SEND_TO_WECHAT = 'send-to-wechat';
export const JOB_SEND_TYPING_TO_WECHAT = 'send-typing-to-wechat';
export const JOB_REPORT_TEMPLATE_RESULT = 'report-template-result';
export const JOB_EXPIRE_PASSIVE_REPLY = 'expire-passive-reply';

/** What each kind of job carries. */
export interface JobPayloads {
  [JOB_DELIVER_TO_VONAGE]: DeliverToVonagePayload;
  [JOB_SEND_TO_WECHAT]: OutboundEventPayload;
  [JOB_SEND_TYPING_TO_WECHAT]: OutboundEventPayload;
  [JOB_REPORT_TEMPLATE_RESULT]: TemplateResultPayload;
  [JOB_EXPIRE_PASSIVE_REPLY]: PassiveReplyExpiryPayload;
}

export type BridgeJobKind = keyof JobPayloads;

/** A job to store, its payload the one its kind carries. */
export type NewJobOf<K extends BridgeJobKind> = NewJob & { kind: K; payload: JobPayloads[K] };

/** A claimed job of one kind. */
export type JobOf<K extends BridgeJobKind> = Job & { kind: K; payload: JobPayloads[K] };

export type JobHandlerOf<K extends BridgeJobKind> = (job: JobOf<K>) => Promise<void>;

/** One handler for every kind. */
export type JobHandlers = { [K in BridgeJobKind]: JobHandlerOf<K> };

/** A job of `kind`: the compiler holds the payload to the kind's. */
export function newJob<K extends BridgeJobKind>(kind: K, job: Omit<NewJobOf<K>, 'kind'>): NewJobOf<K> {
  return { kind, ...job };
}

/** Whether a claimed job is of `kind` (and so carries its payload). */
export function isJobOf<K extends BridgeJobKind>(job: Job, kind: K): job is JobOf<K> {
  return job.kind === kind;
}

/** A claimed job as the job of `kind` it must be; throws when it is of another kind. */
export function jobOf<K extends BridgeJobKind>(kind: K, job: Job): JobOf<K> {
  if (!isJobOf(job, kind)) throw new Error(`a ${job.kind} job was handed to the ${kind} handler`);
  return job;
}

/** The worker's handlers: each kind's own, given its job typed. */
export function registerJobHandlers(handlers: JobHandlers): Record<BridgeJobKind, JobHandler> {
  const typed = <K extends BridgeJobKind>(kind: K): JobHandler => {
    const handler: JobHandlerOf<K> = handlers[kind];
    return (job) => handler(jobOf(kind, job));
  };
  return {
    [JOB_DELIVER_TO_VONAGE]: typed(JOB_DELIVER_TO_VONAGE),
    [JOB_SEND_TO_WECHAT]: typed(JOB_SEND_TO_WECHAT),
    [JOB_SEND_TYPING_TO_WECHAT]: typed(JOB_SEND_TYPING_TO_WECHAT),
    [JOB_REPORT_TEMPLATE_RESULT]: typed(JOB_REPORT_TEMPLATE_RESULT),
    [JOB_EXPIRE_PASSIVE_REPLY]: typed(JOB_EXPIRE_PASSIVE_REPLY),
  };
}

/**
 * Per-user order: every job about one WeChat user (of one account) waits for the previous one, in
 * both directions. The default account's key is `wechat:<openid>`, as before accounts existed;
 * others `wechat:<id>:<openid>`.
 */
export const weChatUserOrderKey = (openid: string, accountId: string = DEFAULT_ACCOUNT_ID): string =>
  `wechat:${accountUserKey(accountId, openid)}`;

// ------------------------------------------------------------------------------------------------
// Payloads

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

/** The payload of a `report-template-result` job: WeChat's TEMPLATESENDJOBFINISH push. */
export interface TemplateResultPayload {
  account: string;
  msgId: string;
  /** WeChat's Status text, as pushed. */
  result: string;
  openid: string;
}

/** The payload of an `expire-passive-reply` job: the reply to give up at its expiry. */
export interface PassiveReplyExpiryPayload {
  /** The mailbox: `accountUserKey(account, openid)`. Absent in jobs stored before accounts existed (the openid's). */
  user?: string;
  /** The recipient's openid, for the status. */
  openid: string;
  replyId: string;
  outbound: OutboundEventPayload;
}
