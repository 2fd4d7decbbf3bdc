/**
 * The reply window: whether a customer-service (free-form) message can still reach a WeChat user,
 * and how many are left.
 *
 * WeChat lets an account answer a user through the customer-service API only after the user did
 * something, for a while and a number of messages:
 * - the user sent a message: 5 messages within 48 hours (older docs allowed more; configurable);
 * - the user followed the account, scanned a QR code or clicked a menu item of the kinds that push an
 *   event (click, scancode_push, scancode_waitmsg): 3 messages within 1 minute.
 * Outside of that WeChat answers 45015 (window closed) or 45047 (quota used), and only template
 * messages and subscription notifications can reach the user.
 *
 * The tracker keeps one allowance per kind of grant in the store (shared by every instance), keyed by
 * (account id, openid), opened from what the bridge receives and used by what it sends. The rules
 * below are pure; `createReplyWindowTracker` is the I/O edge.
 */
import type { SendAllowance, SendAllowances } from '../store/store';
import type { JOB_DELIVER_TO_VONAGE, JobHandlerOf } from './jobs';

/** Room kept in each inbound body for `"reply_window":{"closes_at":…,"replies_left":…}`. */
export const REPLY_WINDOW_BODY_BYTES = 80;

export interface ReplyWindowRules {
  /** How long a user's message opens the window for. Default 48 h. */
  messageWindowMs: number;
  /** How many messages a user's message allows. Default 5. */
  messageReplies: number;
  /** How long a follow, scan or menu click opens the window for. Default 1 min. */
  interactionWindowMs: number;
  /** How many messages a follow, scan or menu click allows. Default 3. */
  interactionReplies: number;
}

export const DEFAULT_REPLY_WINDOW_RULES: ReplyWindowRules = {
  messageWindowMs: 48 * 60 * 60 * 1000,
  messageReplies: 5,
  interactionWindowMs: 60 * 1000,
  interactionReplies: 3,
};

/** What an inbound message does to the window: open it (which kind, from when), or close it. */
export type ReplyWindowGrant = { kind: 'message' | 'interaction'; openedAt: number } | { kind: 'close' };

/** The window as events show it: `closes_at` in epoch seconds (0 when never opened). */
export interface ReplyWindow {
  closes_at: number;
  replies_left: number;
}

/** Events that open the 1-minute window: following, scanning a QR code, menu items that push an event. */
const INTERACTION_EVENTS = new Set(['subscribe', 'SCAN', 'CLICK', 'scancode_push', 'scancode_waitmsg']);

/**
 * The grant an inbound message makes, or undefined when it changes nothing (a location report, a menu
 * link, a template result…). The window opens when the user acted (CreateTime), never later than
 * the bridge received it (`receivedAt`, epoch ms), so that a message delivered late opens it from the
 * right moment and a clock ahead of ours cannot stretch it.
 */
export function replyWindowGrantOf(
  message: { msgType: string; event?: string | undefined; createTime: string },
  receivedAt: number,
): ReplyWindowGrant | undefined {
  const createdAt = Number(message.createTime) * 1000;
  const openedAt = Number.isFinite(createdAt) && createdAt > 0 ? Math.min(createdAt, receivedAt) : receivedAt;
  if (message.msgType !== 'event') return { kind: 'message', openedAt };
  if (message.event === 'unsubscribe') return { kind: 'close' };
  if (message.event !== undefined && INTERACTION_EVENTS.has(message.event)) return { kind: 'interaction', openedAt };
  return undefined;
}

export const replyWindowScope = (account: string, openid: string): string => `wechat:${account}:${openid}`;

/** The allowance a grant stores. */
export function allowanceOf(scope: string, grant: { kind: 'message' | 'interaction'; openedAt: number }, rules: ReplyWindowRules): SendAllowance {
  const message = grant.kind === 'message';
  return {
    scope,
    kind: grant.kind,
    openedAt: grant.openedAt,
    closesAt: grant.openedAt + (message ? rules.messageWindowMs : rules.interactionWindowMs),
    remaining: message ? rules.messageReplies : rules.interactionReplies,
  };
}

/**
 * The window at `now` from a user's allowances: the replies left in every open one, and the latest
 * close among those that still allow one (or, when none does, the latest close of all: the window is
 * used up or closed since then).
 */
export function replyWindowOf(allowances: readonly SendAllowance[], now: number): ReplyWindow {
  const open = allowances.filter((allowance) => allowance.closesAt > now && allowance.remaining > 0);
  const closesAt = Math.max(0, ...(open.length > 0 ? open : allowances).map((allowance) => allowance.closesAt));
  return {
    closes_at: Math.floor(closesAt / 1000),
    replies_left: open.reduce((sum, allowance) => sum + allowance.remaining, 0),
  };
}

/** "closes in 2 h · 3 replies left", or why it is closed: for agents and the CLI. */
export function describeReplyWindow(window: ReplyWindow, nowMs: number): string {
  const nowSeconds = Math.floor(nowMs / 1000);
  if (window.closes_at === 0) return 'closed: the user has not written yet';
  if (window.closes_at <= nowSeconds) return `closed since ${new Date(window.closes_at * 1000).toISOString()}`;
  if (window.replies_left === 0) return `no replies left (the window closes ${new Date(window.closes_at * 1000).toISOString()})`;
  const seconds = window.closes_at - nowSeconds;
  const span = seconds >= 3600 ? `${Math.floor(seconds / 3600)} h` : seconds >= 60 ? `${Math.floor(seconds / 60)} min` : `${seconds} s`;
  return `closes in ${span} · ${window.replies_left} ${window.replies_left === 1 ? 'reply' : 'replies'} left`;
}

export interface ReplyWindowTracker {
  /** Applies what an inbound message did (idempotent: the same grant twice counts once). */
  apply(account: string, openid: string, grant: ReplyWindowGrant): Promise<void>;
  /** The window now. */
  current(account: string, openid: string): Promise<ReplyWindow>;
  /** Counts one free-form message that WeChat accepted. */
  used(account: string, openid: string): Promise<void>;
  /** WeChat said the window is closed or used up (45015, 45047): nothing is left until the user acts. */
  close(account: string, openid: string): Promise<void>;
}

export function createReplyWindowTracker(deps: {
  store: SendAllowances;
  rules?: Partial<ReplyWindowRules>;
  now?: () => number;
}): ReplyWindowTracker {
  const rules: ReplyWindowRules = { ...DEFAULT_REPLY_WINDOW_RULES, ...deps.rules };
  const now = deps.now ?? Date.now;
  const { store } = deps;
  return {
    async apply(account, openid, grant) {
      const scope = replyWindowScope(account, openid);
      if (grant.kind === 'close') await store.revokeSendAllowances(scope);
      else await store.grantSendAllowance(allowanceOf(scope, grant, rules));
    },
    async current(account, openid) {
      return replyWindowOf(await store.listSendAllowances(replyWindowScope(account, openid)), now());
    },
    async used(account, openid) {
      await store.takeSendAllowance(replyWindowScope(account, openid), now());
    },
    async close(account, openid) {
      await store.revokeSendAllowances(replyWindowScope(account, openid));
    },
  };
}

/**
 * Wraps the `deliver-to-vonage` handler: a job about an inbound message first applies the message's
 * grant, then posts its event with the user's window at that moment as `reply_window`.
 */
export function withReplyWindow(
  deliver: JobHandlerOf<typeof JOB_DELIVER_TO_VONAGE>,
  tracker: ReplyWindowTracker,
): JobHandlerOf<typeof JOB_DELIVER_TO_VONAGE> {
  return async function deliverWithReplyWindow(job) {
    const { payload } = job;
    const inbound = payload.replyWindow;
    if (inbound === undefined) return deliver(job);
    if (inbound.grant !== undefined) await tracker.apply(inbound.account, inbound.openid, inbound.grant);
    const replyWindow = await tracker.current(inbound.account, inbound.openid);
    const event = { ...payload.event, body: { ...payload.event.body, reply_window: replyWindow } };
    return deliver({ ...job, payload: { ...payload, event } });
  };
}
