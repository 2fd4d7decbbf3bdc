/**
 * Passive-reply mode: replies for accounts without the customer-service API (unverified
 * subscription accounts get `48001 api unauthorized` from custom/send). Their only channel is the
 * HTTP answer to WeChat's push, within 5 s per delivery.
 *
 * Each WeChat user has a durable **mailbox** of replies waiting for a push to answer:
 *
 * - The `send-to-wechat` job deposits an outbound event instead of calling custom/send (passive mode,
 *   or auto mode once custom/send said 48001 for that user), and enqueues an `expire-passive-reply`
 *   job for when the reply is given up.
 * - The webhook, once the push is stored, takes the oldest reply (one per push) and answers with it;
 *   with none it holds WeChat's request, looking again until 4.5 s after the request arrived.
 * - The expiry job removes a reply still waiting and posts its `failed` `expired` status.
 *
 * The mailbox is a value in the store (`putToken`, under a store lock), so every instance on the
 * database sees the same one: a reply deposited by one instance's worker answers a push held by
 * another, which finds it by looking again every `pollMs` (the depositing instance wakes its own
 * waiters at once). A crash loses nothing acknowledged: the inbound push was stored before holding
 * (and WeChat redelivers it), a queued reply stays in the store until a push takes it.
 *
 * At most once, like customer-service sends: a reply is removed from the mailbox before it is
 * written to WeChat, and put back only when the answer could not be written at all. If the process
 * dies between the two, the expiry job reports `failed` `uncertain` (the status's dedup key keeps a
 * `delivered` status posted first).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { WeChatReplyMode } from '../../config';
import type { Logger } from '../../logger';
import type { BridgeMetrics } from '../../metrics';
import { wasSeen, type JobQueue, type NewJob, type SeenKeys, type StoreSignal, type TokensAndLocks } from '../../store/store';
import { JOB_EXPIRE_PASSIVE_REPLY, newJob, type JobOf, type OutboundEventPayload, type PassiveReplyExpiryPayload } from '../jobs';
import { statusJob, type SendOutcome } from './status';

/** custom/send's answer for an account without the customer-service API. */
export const API_UNAUTHORIZED_ERRCODE = '48001';

export const PASSIVE_STATUS_CODES = { expired: 'expired', uncertain: 'uncertain' } as const;

/** One reply waiting for a push. */
export interface PassiveReply {
  /** `conversationId:eventId`: the outbound event's identity. */
  id: string;
  /** The openid it is for (the resolved recipient: in per-user mode the event may omit `to`). */
  openid: string;
  /** The outbound event, its body ready to send (media uploaded). */
  outbound: OutboundEventPayload;
  /** Epoch ms. */
  queuedAt: number;
  /** Epoch ms: the expiry job gives it up then. */
  expiresAt: number;
}

interface Mailbox {
  pending: PassiveReply[];
  /** Ids taken or expired, kept until their expiry so that a re-run of a deposit does not queue them again. */
  settled: Array<{ id: string; until: number }>;
}

export interface PassiveRepliesDeps {
  store: TokensAndLocks & SeenKeys & Pick<JobQueue, 'enqueue'>;
  logger: Logger;
  mode: WeChatReplyMode;
  /** How long a reply waits for a push before it is given up (`failed` `expired`). */
  replyTtlMs: number;
  now?: () => number;
  /**
   * Wakes held pushes in every instance when a reply is deposited (PostgreSQL LISTEN/NOTIFY). Without
   * it (SQLite: one instance, or tests) held pushes only poll.
   */
  signal?: Pick<StoreSignal, 'publish' | 'subscribe'>;
  /** How often a held push looks at the store for a reply another instance deposited. Default 200 ms, 1 s with a signal. */
  pollMs?: number;
  /** Called once jobs are stored (statuses, expiry jobs), to wake the workers. */
  onJobsStored?: () => void;
  sleep?: (ms: number) => Promise<void>;
  /** Counts each outcome, as custom/send's are counted. */
  metrics?: Pick<BridgeMetrics, 'delivered' | 'failed'>;
}

/** How long a user of an auto-mode account is remembered as passive after a 48001. */
const PASSIVE_USER_MEMORY_MS = 30 * 24 * 60 * 60 * 1000;
/** How long a taken or expired reply is remembered against a second deposit of the same event. */
const SETTLED_MEMORY_MS = 60 * 60 * 1000;
/** A mailbox lock outlives no crash for long: every holder is done in milliseconds. */
const LOCK_TTL_MS = 5_000;
const LOCK_WAIT_MS = 3_000;

const mailboxName = (openid: string): string => `passive-replies:${openid}`;
const passiveUserKey = (openid: string): string => `passive-user:${openid}`;
const replyIdOf = (outbound: OutboundEventPayload): string => `${outbound.conversationId}:${outbound.eventId}`;

export type PassiveReplies = ReturnType<typeof createPassiveReplies>;

export function createPassiveReplies(deps: PassiveRepliesDeps) {
  const now = deps.now ?? Date.now;
  const pollMs = deps.pollMs ?? (deps.signal ? 1_000 : 200);
  const sleep = deps.sleep ?? ((ms: number) => delay(ms));
  const { store, logger } = deps;
  // Wakes this instance's held pushes at once when its own worker deposits a reply.
  const deposited = new EventEmitter();
  deposited.setMaxListeners(0);
  // Another instance's deposits (and this one's own, echoed back: a second wake-up costs one look).
  deps.signal?.subscribe((openid) => deposited.emit(openid));

  async function withMailbox<T>(openid: string, change: (mailbox: Mailbox) => T): Promise<T> {
    const lock = `${mailboxName(openid)}:lock`;
    const owner = randomUUID();
    const deadline = now() + LOCK_WAIT_MS;
    while (!(await store.tryLock(lock, owner, LOCK_TTL_MS))) {
      if (now() > deadline) throw new Error(`passive reply mailbox of ${openid} stayed locked`);
      await sleep(10);
    }
    try {
      const stored = await store.getToken(mailboxName(openid));
      const mailbox: Mailbox = stored ? (JSON.parse(stored.value) as Mailbox) : { pending: [], settled: [] };
      const at = now();
      mailbox.settled = mailbox.settled.filter((entry) => entry.until > at);
      const before = JSON.stringify(mailbox);
      const result = change(mailbox);
      const after = JSON.stringify(mailbox);
      if (after !== before || stored === undefined) {
        const lastUse = Math.max(at, ...mailbox.pending.map((r) => r.expiresAt), ...mailbox.settled.map((s) => s.until));
        await store.putToken(mailboxName(openid), { value: after, expiresAt: lastUse + 60_000 });
      }
      return result;
    } finally {
      await store.unlock(lock, owner).catch((error: unknown) => logger.warn({ err: error }, 'could not release a passive reply mailbox lock'));
    }
  }

  // A deposit runs again only when its job does (a crash before the job completed, taken over
  // within minutes): an hour of memory covers it and keeps a busy user's mailbox small.
  const settle = (mailbox: Mailbox, reply: PassiveReply): void => {
    mailbox.settled.push({ id: reply.id, until: Math.min(reply.expiresAt, now() + SETTLED_MEMORY_MS) + 60_000 });
  };

  const enqueue = async (jobs: NewJob[]): Promise<void> => {
    await store.enqueue(jobs);
    deps.onJobsStored?.();
  };

  /** Removes and returns the oldest reply waiting for this user, if any. */
  const take = (openid: string): Promise<PassiveReply | undefined> =>
    withMailbox(openid, (mailbox) => {
      const reply = mailbox.pending.shift();
      if (reply) settle(mailbox, reply);
      return reply;
    });

  return {
    mode: deps.mode,

    /** Whether this user's replies go through the mailbox (rather than custom/send). */
    async isPassive(openid: string): Promise<boolean> {
      if (deps.mode === 'passive') return true;
      if (deps.mode === 'customer-service') return false;
      return wasSeen(store, passiveUserKey(openid));
    },

    /** Whether a failed custom/send switches the user to passive replies (auto mode, errcode 48001). */
    switchesOn(errorCode: string | undefined): boolean {
      return deps.mode === 'auto' && errorCode === API_UNAUTHORIZED_ERRCODE;
    },

    async switchToPassive(openid: string): Promise<void> {
      if (await store.markSeen(passiveUserKey(openid), now() + PASSIVE_USER_MEMORY_MS)) {
        logger.info({ openid }, 'custom/send is not authorised for this account (48001): replies to this user are passive from now on');
      }
    },

    /**
     * Queues a reply for the user's next push (idempotent: a job that runs again after a crash does
     * not queue the same event twice) and stores the job that gives it up at its expiry.
     */
    async deposit(user: string, outbound: OutboundEventPayload, openid: string = user): Promise<void> {
      const id = replyIdOf(outbound);
      const queuedAt = now();
      const reply: PassiveReply = { id, openid, outbound, queuedAt, expiresAt: queuedAt + deps.replyTtlMs };
      const queued = await withMailbox(user, (mailbox) => {
        if (mailbox.pending.some((r) => r.id === id) || mailbox.settled.some((s) => s.id === id)) return false;
        mailbox.pending.push(reply);
        return true;
      });
      const payload: PassiveReplyExpiryPayload = { user, openid, replyId: id, outbound };
      await enqueue([
        newJob(JOB_EXPIRE_PASSIVE_REPLY, {
          // Its own order key: a job that runs in a day must not hold up anything else.
          orderKey: `passive-expiry:${id}`,
          payload,
          dedupKey: `passive-expiry:${id}`,
          runAt: reply.expiresAt,
        }),
      ]);
      if (queued) {
        logger.debug({ user, conversationId: outbound.conversationId, eventId: outbound.eventId }, 'reply queued for the next push');
        deposited.emit(user);
        await deps.signal?.publish(user).catch((error: unknown) => {
          logger.warn({ err: error }, 'could not signal the other instances; their held pushes find the reply by polling');
        });
      }
    },

    take,

    /** Puts back a reply whose answer could not be written: first in line again. */
    putBack(openid: string, reply: PassiveReply): Promise<void> {
      return withMailbox(openid, (mailbox) => {
        mailbox.settled = mailbox.settled.filter((s) => s.id !== reply.id);
        if (!mailbox.pending.some((r) => r.id === reply.id)) mailbox.pending.unshift(reply);
      });
    },

    /**
     * Takes a reply for this user, waiting until `deadline` (epoch ms) or `signal` for one to be
     * deposited. Undefined when none came in time.
     */
    async waitFor(openid: string, deadline: number, signal?: AbortSignal): Promise<PassiveReply | undefined> {
      for (;;) {
        if (signal?.aborted) return undefined;
        const reply = await take(openid);
        if (reply) return reply;
        const remaining = deadline - now();
        if (remaining <= 0) return undefined;
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            deposited.off(openid, done);
            signal?.removeEventListener('abort', done);
            resolve();
          };
          const timer = setTimeout(done, Math.min(pollMs, remaining));
          deposited.on(openid, done);
          signal?.addEventListener('abort', done);
        });
        if (now() >= deadline) {
          // One last look: a reply deposited right at the deadline is not left for the next push.
          return signal?.aborted ? undefined : take(openid);
        }
      }
    },

    /** A reply taken from the mailbox is done: its one status (`delivered` `via: "passive"` once written to WeChat). */
    async settle(reply: PassiveReply, outcome: SendOutcome): Promise<void> {
      await enqueue([statusJob(reply.outbound, outcome, reply.openid)]);
      if (outcome.status === 'delivered') deps.metrics?.delivered('outbound', (now() - reply.queuedAt) / 1000);
      else deps.metrics?.failed('outbound', 'bridge', outcome.errorCode);
    },

    /** The `expire-passive-reply` job's handler. */
    async expire(job: JobOf<typeof JOB_EXPIRE_PASSIVE_REPLY>): Promise<void> {
      const { openid, replyId, outbound } = job.payload;
      // Jobs stored before accounts name only the openid: the default account's key.
      const user = job.payload.user ?? openid;
      const wasWaiting = await withMailbox(user, (mailbox) => {
        const index = mailbox.pending.findIndex((r) => r.id === replyId);
        if (index < 0) return false;
        const [reply] = mailbox.pending.splice(index, 1);
        settle(mailbox, reply!);
        return true;
      });
      // Taken by a push: its delivered status is already stored (this one is then a no-op, the
      // status's dedup key keeps the first), unless the process died while answering.
      const outcome: SendOutcome = wasWaiting
        ? { status: 'failed', errorCode: PASSIVE_STATUS_CODES.expired, errorMessage: 'no message from the user to answer before the reply expired' }
        : {
            status: 'failed',
            errorCode: PASSIVE_STATUS_CODES.uncertain,
            errorMessage: 'delivery uncertain: the bridge stopped while answering a push with this reply',
          };
      const [result] = await store.enqueue([statusJob(outbound, outcome, openid)]);
      if (result?.outcome === 'stored') {
        deps.onJobsStored?.();
        deps.metrics?.failed('outbound', 'bridge', outcome.errorCode);
        logger.warn({ openid, conversationId: outbound.conversationId, eventId: outbound.eventId, errorCode: outcome.errorCode }, 'passive reply not delivered');
      }
    },
  };
}
