/**
 * An emulator of the Vonage Conversation API (v1) for one application: a real HTTP server on
 * loopback serving the documented API (routes.ts) over an in-memory model of the application's
 * conversations, users, members and events (state.ts), dispatching every event created (the
 * bridge's own included: Vonage echoes them) to the RTC `event_url`, signed when a signature secret
 * is set, in order per conversation, retried on 5xx, 429 and network failures (dispatch.ts). This
 * module assembles the three and is the emulator's public face: `startVonageEmulator` and what it
 * returns.
 *
 * `surface: 'events-only'` narrows it to what the bridge's own tests were written against: only
 * `POST` and `GET /{v1|beta}/conversations/{id}/events`, to any conversation id, never checking `from`.
 * Tests steer failures with `script([...])` and `loseEventAnswers(n)` (routes.ts describes them);
 * `sendUnsignedCallbacks(n)` sends the next n callbacks' first attempt unsigned.
 */
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type jwt from 'jsonwebtoken';
import { createTrafficRecorder, type TrafficRecorder } from '../traffic';
import { createDispatcher, type DispatchRecord } from './dispatch';
import { createVonageRoutes, type ScriptedResponse } from './routes';
import { VonageState, type ConversationView, type EventView, type RecordedEvent, type VonageChange } from './state';

export interface VonageEmulator {
  /** e.g. `http://127.0.0.1:PORT/v1`. */
  baseUrl: string;
  traffic: TrafficRecorder;
  /** Events created with `POST …/events`, in order. */
  events: RecordedEvent[];
  /** Every POST seen, including refused and scripted ones. */
  readonly requests: number;
  script(responses: ScriptedResponse[]): void;
  /** Drops the scripted responses not consumed yet: requests are handled normally again. */
  clearScript(): void;
  /** Resolves with all events recorded so far once there are at least `n`; rejects after `timeoutMs` (default 5 s). */
  waitForEvents(n: number, timeoutMs?: number): Promise<RecordedEvent[]>;

  /** Where events are dispatched (the application's RTC `event_url`); undefined dispatches nothing. */
  setRtcEventUrl(url: string | undefined): void;

  /**
   * The first attempt of each of the next `n` callbacks goes out unsigned, as Vonage documents for
   * "the rare case of an internal error"; its retries (after a 5xx) are signed.
   */
  sendUnsignedCallbacks(n: number): void;

  /**
   * From now on, every `everyNth` event created with `POST …/events` is committed and then its
   * answer is lost (the connection drops), as when a response times out on the way back; 0 stops.
   */
  loseEventAnswers(everyNth: number): void;
  /** Every dispatch, in the order the events were created. */
  dispatches: DispatchRecord[];
  /** Resolves once `predicate` holds for the dispatches (checked on every change); rejects after `timeoutMs`. */
  waitForDispatches(predicate: (dispatches: DispatchRecord[]) => boolean, timeoutMs?: number): Promise<DispatchRecord[]>;
  conversations(): ConversationView[];
  /** All events of a conversation (member events included), oldest first. */
  conversationEvents(conversationId: string): EventView[];
  /** Like the Client SDK's live connection: every conversation and event as it is created. */
  onChange(listener: (change: VonageChange) => void): () => void;
  close(): Promise<void>;
}

export interface VonageEmulatorOptions {
  publicKeyPem: string;
  applicationId: string;
  /** Clock for token checks and timestamps, epoch ms; default `Date.now`. */
  now?: () => number;
  /** `full` (default): the documented API. `events-only`: the narrow surface of the bridge's tests. */
  surface?: 'full' | 'events-only';
  /** The application's RTC `event_url`. */
  rtcEventUrl?: string;
  /** The account's signature secret: when set, callbacks are signed (signed_callbacks). */
  signatureSecret?: string;
  /** The account's API key, named in signed callbacks; default random. */
  apiKey?: string;
  /** Waits between dispatch attempts; default 1 s, 2 s, 5 s, 10 s, 30 s (six attempts in all). */
  dispatchRetryDelaysMs?: readonly number[];
  /** How long one dispatch attempt waits for an answer; default 10 s. */
  dispatchTimeoutMs?: number;
  traffic?: TrafficRecorder;
  /** Who a request came from, for the traffic log; default `user <sub>` or `application`. */
  callerOf?: (claims: jwt.JwtPayload) => string;
}

export async function startVonageEmulator(options: VonageEmulatorOptions): Promise<VonageEmulator> {
  const now = options.now ?? Date.now;
  const traffic = options.traffic ?? createTrafficRecorder();
  const closing = new AbortController();
  const state = new VonageState(now);
  const dispatcher = createDispatcher({
    state,
    applicationId: options.applicationId,
    signatureSecret: options.signatureSecret,
    apiKey: options.apiKey ?? crypto.randomBytes(4).toString('hex'),
    rtcEventUrl: options.rtcEventUrl,
    retryDelaysMs: options.dispatchRetryDelaysMs ?? [1_000, 2_000, 5_000, 10_000, 30_000],
    timeoutMs: options.dispatchTimeoutMs ?? 10_000,
    now,
    traffic,
    signal: closing.signal,
  });
  const routes = createVonageRoutes({
    state,
    dispatcher,
    traffic,
    now,
    publicKeyPem: options.publicKeyPem,
    applicationId: options.applicationId,
    eventsOnly: options.surface === 'events-only',
    callerOf: options.callerOf ?? ((claims: jwt.JwtPayload) => (typeof claims.sub === 'string' ? `user ${claims.sub}` : 'application')),
    signal: closing.signal,
  });
  const server = http.createServer(routes.listener);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  state.origin = `http://127.0.0.1:${port}`;

  return {
    baseUrl: `${state.origin}/v1`,
    traffic,
    events: state.events,
    get requests() {
      return routes.requests;
    },
    script(responses) {
      routes.script(responses);
    },
    clearScript() {
      routes.clearScript();
    },
    waitForEvents(n, timeoutMs = 5000) {
      return state.waitForEvents(n, timeoutMs);
    },
    loseEventAnswers(everyNth) {
      routes.loseEventAnswers(everyNth);
    },
    sendUnsignedCallbacks(n) {
      dispatcher.sendUnsignedCallbacks(n);
    },
    setRtcEventUrl(url) {
      dispatcher.setRtcEventUrl(url);
    },
    dispatches: dispatcher.dispatches,
    waitForDispatches(predicate, timeoutMs = 5000) {
      return dispatcher.waitForDispatches(predicate, timeoutMs);
    },
    conversations() {
      return [...state.conversations.values()].map((c) => state.conversationView(c, state.origin, 'v1'));
    },
    conversationEvents(conversationId) {
      const conversation = state.conversations.get(conversationId);
      return conversation ? conversation.events.map((e) => state.eventView(conversation, e, state.origin, 'v1')) : [];
    },
    onChange(listener) {
      return state.onChange(listener);
    },
    async close() {
      if (closing.signal.aborted) return;
      closing.abort();
      state.close();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await stopped;
      await dispatcher.drain();
    },
  };
}
