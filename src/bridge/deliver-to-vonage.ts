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
 * posts only when it is not there. The look costs a few GETs, on retries only. A conversation busier
 * than `RECONCILE_MAX_PAGES` pages since the job was created is not searched to the end: the job then
 * posts, accepting a possible duplicate over a lost message.
 */
import { PermanentError } from '../errors';
import type { Job } from '../store/store';
import type { ConversationRouter } from './conversation-routing';
import type { ConversationBackend, ConversationEvent, DeliverToVonagePayload } from './ports';

/** Vonage's largest page, and how many a retry reads at most. */
export const RECONCILE_PAGE_SIZE = 100;
export const RECONCILE_MAX_PAGES = 20;
/** Events stamped this long before the job was created still count (clocks differ). */
const CLOCK_SKEW_MS = 5 * 60_000;

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
}

export function createDeliverToVonageHandler(deps: DeliverToVonageDeps) {
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

  return async function deliverToVonage(job: Job): Promise<void> {
    const { conversationId, event } = await target(job.payload as DeliverToVonagePayload);
    if (job.attempts > 0 && (await alreadyPosted(conversationId, event, job.createdAt))) return;
    await deps.backend.createEvent(conversationId, event);
  };
}
