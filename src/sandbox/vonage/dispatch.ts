/**
 * The Vonage emulator's dispatch to the application: every event created in a conversation (the
 * application's own included: Vonage echoes them) goes to the RTC `event_url`, signed when a
 * signature secret is set (callbacks.ts), in order per conversation (one callback after another),
 * retried on 5xx, 429 and network failures; each attempt is in the traffic log and in `dispatches`.
 */
import type { TrafficRecorder } from '../traffic';
import type { DeliveryAttempt } from '../delivery';
import { deliverCallback, isDelivered, signCallback } from './callbacks';
import type { ConversationState, StoredEvent, VonageState } from './state';

export interface DispatchRecord {
  conversationId: string;
  eventId: number;
  type: string;
  /** The exact JSON body sent. */
  rawBody: string;
  attempts: DeliveryAttempt[];
  /** Authorization header of each attempt (to check signatures in tests). */
  authorizations: Array<string | undefined>;
  outcome: 'pending' | 'delivered' | 'failed';
}

export interface DispatcherDeps {
  state: VonageState;
  applicationId: string;
  /** The account's signature secret: when set, callbacks are signed. */
  signatureSecret: string | undefined;
  /** The account's API key, named in signed callbacks. */
  apiKey: string;
  rtcEventUrl: string | undefined;
  /** Waits between attempts; its length is the number of retries. */
  retryDelaysMs: readonly number[];
  /** How long one attempt waits for an answer. */
  timeoutMs: number;
  now: () => number;
  traffic: TrafficRecorder;
  /** Aborted when the emulator closes: no new callback starts, and waits end. */
  signal: AbortSignal;
}

export interface Dispatcher {
  /** Every dispatch, in the order the events were created. */
  readonly dispatches: DispatchRecord[];
  /** Where events are dispatched; undefined dispatches nothing. */
  setRtcEventUrl(url: string | undefined): void;
  /** The first attempt of each of the next `n` callbacks goes out unsigned. */
  sendUnsignedCallbacks(n: number): void;
  /** Dispatches a conversation's event, as its `v1` view plus the conversation and application ids. */
  dispatchEvent(conversation: ConversationState, event: StoredEvent): void;
  /** Queues one callback behind the conversation's earlier ones. `eventId` 0: not a conversation event. */
  dispatchPayload(conversation: ConversationState, payload: Record<string, unknown>, eventId: number): void;
  /** Resolves once `predicate` holds for the dispatches (checked on every change); rejects after `timeoutMs`. */
  waitForDispatches(predicate: (dispatches: DispatchRecord[]) => boolean, timeoutMs: number): Promise<DispatchRecord[]>;
  /** Resolves when every queued callback has run (or given up on close). */
  drain(): Promise<void>;
}

export function createDispatcher(deps: DispatcherDeps): Dispatcher {
  const { state, traffic, now, signal } = deps;
  const dispatches: DispatchRecord[] = [];
  const dispatchWaiters = new Set<() => void>();
  /** Per conversation id: callbacks run one after another, so the application sees them in order. */
  const chains = new Map<string, Promise<void>>();
  let rtcEventUrl = deps.rtcEventUrl;
  let unsignedCallbacks = 0;

  function notifyDispatchWaiters(): void {
    for (const wake of [...dispatchWaiters]) wake();
  }

  function dispatchPayload(conversation: ConversationState, payload: Record<string, unknown>, eventId: number): void {
    const url = rtcEventUrl;
    if (url === undefined) return;
    const record: DispatchRecord = {
      conversationId: conversation.id,
      eventId,
      type: String(payload.type),
      rawBody: JSON.stringify(payload),
      attempts: [],
      authorizations: [],
      outcome: 'pending',
    };
    dispatches.push(record);
    notifyDispatchWaiters();
    const secret = deps.signatureSecret;
    let unsignedFirstAttempt = false;
    if (secret && unsignedCallbacks > 0) {
      unsignedCallbacks -= 1;
      unsignedFirstAttempt = true;
    }
    const chain = (chains.get(conversation.id) ?? Promise.resolve()).then(async () => {
      if (signal.aborted) return;
      const attempts = await deliverCallback({
        url,
        rawBody: record.rawBody,
        ...(secret
          ? {
              sign: (raw: string) => {
                if (unsignedFirstAttempt) {
                  unsignedFirstAttempt = false;
                  return undefined;
                }
                return signCallback(raw, { secret, apiKey: deps.apiKey, applicationId: deps.applicationId, nowMs: now() });
              },
            }
          : {}),
        retryDelaysMs: deps.retryDelaysMs,
        timeoutMs: deps.timeoutMs,
        now,
        signal,
        onAttempt: (attempt, authorization) => {
          record.attempts.push(attempt);
          record.authorizations.push(authorization);
          traffic.record({
            at: attempt.at,
            channel: 'vonage-webhook',
            caller: 'Vonage',
            method: 'POST',
            path: new URL(url).pathname,
            requestBody: record.rawBody,
            ...(attempt.status !== undefined ? { status: attempt.status } : {}),
            ...(attempt.body !== undefined ? { responseBody: attempt.body } : {}),
            ...(attempt.error !== undefined ? { error: attempt.error } : {}),
            durationMs: attempt.durationMs,
            note: [
              authorization ? 'signed: Authorization: Bearer <HS256 JWT with payload_hash>' : secret ? 'unsigned (a rare internal error)' : 'unsigned (no signature secret)',
              attempt.attempt > 1 ? `retry ${attempt.attempt - 1}` : undefined,
            ]
              .filter(Boolean)
              .join('; '),
          });
          notifyDispatchWaiters();
        },
      });
      record.outcome = attempts.some(isDelivered) ? 'delivered' : signal.aborted ? 'pending' : 'failed';
      notifyDispatchWaiters();
    });
    chains.set(conversation.id, chain);
  }

  return {
    dispatches,
    setRtcEventUrl(url) {
      rtcEventUrl = url;
    },
    sendUnsignedCallbacks(n) {
      unsignedCallbacks += n;
    },
    dispatchEvent(conversation, event) {
      if (rtcEventUrl === undefined) return;
      const view = state.eventView(conversation, event, state.origin, 'v1');
      const payload: Record<string, unknown> = {
        type: view.type,
        body: view.body,
        id: view.id,
        conversation_id: conversation.id,
        application_id: deps.applicationId,
        timestamp: view.timestamp,
        ...(view.from !== undefined ? { from: view.from } : {}),
        ...(view._embedded ? { _embedded: view._embedded } : {}),
      };
      dispatchPayload(conversation, payload, event.id);
    },
    dispatchPayload,
    waitForDispatches(predicate, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!predicate(dispatches)) return;
          clearTimeout(timer);
          dispatchWaiters.delete(check);
          resolve(dispatches.slice());
        };
        const timer = setTimeout(() => {
          dispatchWaiters.delete(check);
          reject(new Error(`Vonage emulator: dispatches did not reach the expected state within ${timeoutMs} ms`));
        }, timeoutMs);
        dispatchWaiters.add(check);
        check();
      });
    },
    async drain() {
      await Promise.all([...chains.values()].map((chain) => chain.catch(() => undefined)));
    },
  };
}
