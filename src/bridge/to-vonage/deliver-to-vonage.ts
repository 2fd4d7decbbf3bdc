/**
 * The `deliver-to-vonage` job: post one prepared event to its conversation.
 *
 * Errors are already classified by the backend client (retryable / permanent); the worker
 * decides what to do with them. One job is one event, so a retry never re-posts a part that
 * already went through.
 *
 * Exactly once, as far as the remote lets us: the Conversation API has no idempotency key, and a
 * post whose answer never came (a timeout, a reset, a crash of this process mid-request) may have
 * created the event anyway. So a job that has run before first looks for its own event in the
 * conversation — the bridge's bodies are deterministic, so an identical body of the same type is
 * ours — paging back from the newest event to the job's creation (less a clock-skew margin), and
 * posts only when it is not there.
 *
 * Where it looks: Vonage's event ids are progressive per conversation, so an event created by a post
 * has a higher id than any event id known before the post was sent. The handler remembers, per
 * conversation, the newest id it has seen (from its own posts' answers; one `GET` of the newest event
 * when it knows none). When an attempt fails, that id is stored for the job (`marks`), and a retry
 * lists only the events after it (`start_id`, oldest first, of the event's type), to the end: exact,
 * whatever the conversation's traffic, and a few GETs at most (the events of a few seconds).
 * An attempt that Vonage refused (429, 503) or that never reached it (connection refused) created
 * nothing: its mark says so, and its retry posts without searching. Otherwise a backlog left by an
 * outage would drain in quadratic time: every job of it would list all the events its predecessors
 * posted since the outage began.
 * Without a mark (the process died mid-request, or no store for marks), or with a "nothing posted" mark
 * on a run after an interrupted one (which may have posted), the retry falls back to paging
 * back from the newest event to the job's creation, at most `RECONCILE_MAX_PAGES` pages; a busier
 * conversation is not searched to the end, and the job then posts, accepting a possible duplicate
 * over a lost message.
 */
import { PermanentError, RetryableError } from '../../errors';
import type { TokensAndLocks } from '../../store/store';
import type { ConversationRouter } from './conversation-routing';
import type { DeliverToVonagePayload, JOB_DELIVER_TO_VONAGE, JobHandlerOf } from '../jobs';
import type { ConversationBackend, ConversationEvent } from '../ports';

/** Vonage's largest page, and how many a retry reads at most. */
export const RECONCILE_PAGE_SIZE = 100;
export const RECONCILE_MAX_PAGES = 20;
/** Events stamped this long before the job was created still count (clocks differ). */
const CLOCK_SKEW_MS = 5 * 60_000;
/** A safety bound on the exact search's pages (100 events each), far above any retry delay's traffic. */
const EXACT_SEARCH_MAX_PAGES = 10_000;
/** Conversations whose newest event id is remembered (per-user mode has one per WeChat user). */
const KNOWN_CONVERSATIONS_MAX = 10_000;
/** A mark outlives its job: the worker gives up on a job after at most a day. */
const MARK_TTL_MS = 3 * 24 * 60 * 60_000;

/** The store entry holding the newest event id known before a job's first attempt was posted. */
export const reconcileMarkName = (jobId: string): string => `vonage-reconcile-after:${jobId}`;
/** The mark of a job whose attempts so far all certainly created nothing. */
export const NOTHING_POSTED_MARK = 'nothing-posted';

/** JSON with object keys sorted, so that a body echoed back with its keys in another order still matches. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** The body without its `reply_window`: the window a retry reports may have moved since the first post. */
const withoutReplyWindow = ({ reply_window: _shown, ...rest }: Record<string, unknown>): Record<string, unknown> => rest;

const sameEvent = (a: ConversationEvent, b: { type: string; body: Record<string, unknown> }): boolean =>
  a.type === b.type && canonicalJson(withoutReplyWindow(a.body)) === canonicalJson(withoutReplyWindow(b.body));

export interface DeliverToVonageDeps {
  backend: ConversationBackend;
  /**
   * Per-user mode: finds or makes the sender's conversation for a job that carries a `route`
   * instead of a conversation id (see conversation-routing.ts). The event is then posted from the
   * user's member. Without a router, such a job fails for good (the bridge runs in fixed mode).
   */
  router?: ConversationRouter;
  /** Where a failed attempt records the newest event id known before it posted (see above). */
  marks?: Pick<TokensAndLocks, 'getToken' | 'putToken'>;
}

export function createDeliverToVonageHandler(deps: DeliverToVonageDeps): JobHandlerOf<typeof JOB_DELIVER_TO_VONAGE> {
  /** Per conversation, the newest event id seen; insertion order makes the oldest entry the first to go. */
  const newestKnown = new Map<string, number>();

  function remember(conversationId: string, id: string | undefined): void {
    const value = Number(id);
    if (id === undefined || id === '' || !Number.isSafeInteger(value)) return;
    const previous = newestKnown.get(conversationId);
    newestKnown.delete(conversationId);
    newestKnown.set(conversationId, previous === undefined ? value : Math.max(previous, value));
    if (newestKnown.size > KNOWN_CONVERSATIONS_MAX) newestKnown.delete(newestKnown.keys().next().value!);
  }

  /** The newest event id of the conversation now (0 when it has none), asking Vonage only when unknown. */
  async function newestEventId(conversationId: string): Promise<number> {
    const known = newestKnown.get(conversationId);
    if (known !== undefined) return known;
    const page = await deps.backend.listRecentEvents(conversationId, { pageSize: 1 });
    remember(conversationId, page.events[0]?.id ?? '0');
    return newestKnown.get(conversationId) ?? 0;
  }

  /** Exact: every event of the type after `afterId`, oldest first, to the end. */
  async function postedAfter(conversationId: string, event: ConversationEvent, afterId: number): Promise<boolean> {
    let cursor: string | undefined;
    for (let page = 0; page < EXACT_SEARCH_MAX_PAGES; page++) {
      const result = await deps.backend.listRecentEvents(conversationId, {
        pageSize: RECONCILE_PAGE_SIZE,
        eventType: event.type,
        startId: String(afterId + 1),
        order: 'asc',
        ...(cursor !== undefined ? { cursor } : {}),
      });
      for (const existing of result.events) remember(conversationId, existing.id);
      if (result.events.some((existing) => sameEvent(event, existing))) return true;
      if (result.nextCursor === undefined) return false;
      cursor = result.nextCursor;
    }
    return false;
  }

  async function readMark(jobId: string): Promise<number | typeof NOTHING_POSTED_MARK | undefined> {
    const mark = await deps.marks?.getToken(reconcileMarkName(jobId));
    if (mark?.value === NOTHING_POSTED_MARK) return NOTHING_POSTED_MARK;
    const value = Number(mark?.value);
    return mark !== undefined && Number.isSafeInteger(value) ? value : undefined;
  }

  async function alreadyPosted(conversationId: string, event: ConversationEvent, createdAt: number): Promise<boolean> {
    let cursor: string | undefined;
    for (let page = 0; page < RECONCILE_MAX_PAGES; page++) {
      const result = await deps.backend.listRecentEvents(conversationId, { pageSize: RECONCILE_PAGE_SIZE, eventType: event.type, cursor });
      if (result.events.some((existing) => sameEvent(event, existing))) return true;
      const oldest = result.events.at(-1)?.timestamp;
      if (result.nextCursor === undefined || (oldest !== undefined && oldest < createdAt - CLOCK_SKEW_MS)) return false;
      cursor = result.nextCursor;
    }
    return false;
  }

  /** The conversation and the event to post there: as stored, or routed to the sender's own conversation. */
  async function target(payload: DeliverToVonagePayload): Promise<{ conversationId: string; event: ConversationEvent }> {
    if (payload.conversationId !== undefined) return { conversationId: payload.conversationId, event: payload.event };
    if (payload.route === undefined) throw new PermanentError('deliver-to-vonage job names neither a conversation nor a WeChat user');
    if (deps.router === undefined) {
      throw new PermanentError('per-user job, but the bridge runs with a fixed VONAGE_CONVERSATION_ID: replay it after unsetting it');
    }
    const { conversationId, memberId } = await deps.router.resolve(payload.route);
    return { conversationId, event: { ...payload.event, from: memberId } };
  }

  return async function deliverToVonage(job) {
    const { conversationId, event } = await target(job.payload);
    // A "nothing posted" mark speaks for the attempts that ended in a recorded refusal. An interrupted
    // run (the process died mid-attempt) may have posted after it: then search as if there were no mark.
    const stored = job.attempts > 0 ? await readMark(job.id) : undefined;
    const mark = stored === NOTHING_POSTED_MARK && job.interrupted ? undefined : stored;
    if (typeof mark === 'number') {
      if (await postedAfter(conversationId, event, mark)) return;
    } else if (mark === undefined && job.attempts > 0 && (await alreadyPosted(conversationId, event, job.createdAt))) {
      return;
    }
    // The lower bound for a later retry's search: only the first unanswered attempt's matters.
    const before = deps.marks !== undefined && typeof mark !== 'number' ? await newestEventId(conversationId) : undefined;
    let created: { id: string };
    try {
      created = await deps.backend.createEvent(conversationId, event);
    } catch (error) {
      const refused = error instanceof RetryableError && error.refused;
      // A refusal after a refusal: the mark says so already.
      if (before !== undefined && !(refused && mark === NOTHING_POSTED_MARK)) {
        const value = refused ? NOTHING_POSTED_MARK : String(before);
        await deps.marks!.putToken(reconcileMarkName(job.id), { value, expiresAt: job.createdAt + MARK_TTL_MS }).catch(() => undefined);
      }
      throw error;
    }
    remember(conversationId, created.id);
  };
}
