/**
 * Prometheus metrics (prom-client) on a registry of the bridge's own, never the global default:
 * two bridges in one process (tests, the sandbox) keep their counts apart.
 *
 * The rest of the code reports through the small `BridgeMetrics` methods below, named after what
 * happened, so no module outside this one touches prom-client.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { QueueStats } from './store/store';

export type Direction = 'inbound' | 'outbound' | 'status';

const ACK_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const DELIVERY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400];
/** The window for the "active WeChat users" gauges. */
const ACTIVE_WINDOWS = { '5m': 5 * 60_000, '1h': 60 * 60_000, '24h': 24 * 60 * 60_000 } as const;

export interface BridgeMetrics {
  readonly registry: Registry;
  /** A request reached a webhook with a message or event to act on (signature already checked). */
  received(direction: Direction): void;
  /** It was stored (`duplicate`: its dedup key was already there) and answered; `seconds` since the request began. */
  acknowledged(direction: Direction, outcome: 'stored' | 'duplicate', seconds: number): void;
  /** A job finished: `seconds` from when it was first stored. */
  delivered(direction: Direction, seconds: number): void;
  failed(direction: Direction, remote: 'wechat' | 'vonage' | 'bridge', code: string): void;
  deadLettered(direction: Direction): void;
  /** An error code a remote answered with (WeChat errcode, Vonage error code, HTTP status). */
  remoteError(remote: 'wechat' | 'vonage', code: string): void;
  /** This instance fetched an access token (for `accountId`, when the caller knows it). */
  tokenRefreshed(accountId?: string): void;
  /**
   * One Official Account's traffic: a message pushed to its callback (`inbound`, retries included)
   * or delivered to WeChat through it (`outbound`). Separate series, so the unlabelled totals stay as they were.
   */
  accountMessage(accountId: string, direction: Direction): void;
  /** WeChat refused a freshly refetched token too: another system is fetching tokens for the AppID. */
  tokenConflict(): void;
  /** A correctly signed RTC callback whose token had no `payload_hash` (accepted; its body is not covered). */
  unhashedCallback(): void;
  /** A webhook request answered 503 without being stored: too many waiting (`pending`) or past its deadline. */
  shed(reason: 'pending' | 'deadline'): void;
  /** Conversation analytics: one WeChat user's message went to a conversation. */
  userMessage(openid: string, conversationId: string): void;
}

export function createMetrics(options: { queueStats: () => Promise<QueueStats>; now?: () => number }): BridgeMetrics {
  const registry = new Registry();
  const now = options.now ?? Date.now;
  // The three queue gauges are collected one after the other on each scrape: read the store once.
  let statsCache: { at: number; stats: Promise<QueueStats> } | undefined;
  const queueStats = (): Promise<QueueStats> => {
    if (!statsCache || now() - statsCache.at > 1000) statsCache = { at: now(), stats: options.queueStats() };
    return statsCache.stats;
  };
  const prefix = 'wechat_bridge_';
  // The process's own figures (RSS, heap, GC pauses, event-loop lag), for capacity and leak watching.
  collectDefaultMetrics({ register: registry, prefix });

  const received = new Counter({ name: `${prefix}messages_received_total`, help: 'Messages and events received, per direction', labelNames: ['direction'], registers: [registry] });
  const acknowledged = new Counter({ name: `${prefix}messages_acknowledged_total`, help: 'Messages stored durably and acknowledged', labelNames: ['direction'], registers: [registry] });
  const deduplicated = new Counter({ name: `${prefix}messages_deduplicated_total`, help: 'Redeliveries recognised by their dedup key and stored once', labelNames: ['direction'], registers: [registry] });
  const delivered = new Counter({ name: `${prefix}messages_delivered_total`, help: 'Messages delivered to the remote side', labelNames: ['direction'], registers: [registry] });
  const failed = new Counter({ name: `${prefix}messages_failed_total`, help: 'Messages that failed for good, by remote and code', labelNames: ['direction', 'remote', 'code'], registers: [registry] });
  const deadLettered = new Counter({ name: `${prefix}messages_dead_lettered_total`, help: 'Jobs moved to the dead letters', labelNames: ['direction'], registers: [registry] });
  const remoteErrors = new Counter({ name: `${prefix}remote_errors_total`, help: 'Error codes seen from WeChat and Vonage', labelNames: ['remote', 'code'], registers: [registry] });
  const unhashedCallbacks = new Counter({ name: `${prefix}rtc_unhashed_callbacks_total`, help: 'Signed RTC callbacks accepted without a payload_hash claim', registers: [registry] });
  const shedRequests = new Counter({ name: `${prefix}requests_shed_total`, help: 'Webhook requests answered 503 to keep the acknowledgement deadline', labelNames: ['reason'], registers: [registry] });
  const tokenRefreshes = new Counter({ name: `${prefix}wechat_token_refreshes_total`, help: 'WeChat access tokens fetched by this instance', registers: [registry] });
  const accountMessages = new Counter({
    name: `${prefix}account_messages_total`,
    help: 'Per Official Account: messages pushed to its callback (inbound) and delivered through it (outbound)',
    labelNames: ['account', 'direction'],
    registers: [registry],
  });
  const accountTokenRefreshes = new Counter({
    name: `${prefix}account_token_refreshes_total`,
    help: 'Per Official Account: WeChat access tokens fetched by this instance',
    labelNames: ['account'],
    registers: [registry],
  });
  const tokenConflicts = new Counter({
    name: `${prefix}wechat_token_conflicts_total`,
    help: 'Sends failed because WeChat refused the access token even after a refetch (another system fetching tokens for the AppID)',
    registers: [registry],
  });
  const ackSeconds = new Histogram({ name: `${prefix}acknowledgement_seconds`, help: 'Webhook request to durable acknowledgement', labelNames: ['direction'], buckets: ACK_BUCKETS, registers: [registry] });
  const deliverySeconds = new Histogram({ name: `${prefix}delivery_seconds`, help: 'First stored to delivered (end to end inside the bridge)', labelNames: ['direction'], buckets: DELIVERY_BUCKETS, registers: [registry] });
  const conversationMessages = new Counter({
    name: `${prefix}conversation_messages_total`,
    help: 'Inbound WeChat messages per conversation (one series per conversation: mind the cardinality in per-user mode)',
    labelNames: ['conversation_id'],
    registers: [registry],
  });

  // Last message time per openid, for the active-user gauges; pruned past the longest window.
  const lastSeen = new Map<string, number>();
  new Gauge({
    name: `${prefix}active_wechat_users`,
    help: 'Distinct WeChat users who wrote within the window (this instance)',
    labelNames: ['window'],
    registers: [registry],
    collect() {
      const t = now();
      for (const [openid, at] of lastSeen) if (t - at > ACTIVE_WINDOWS['24h']) lastSeen.delete(openid);
      for (const [window, ms] of Object.entries(ACTIVE_WINDOWS)) {
        let count = 0;
        for (const at of lastSeen.values()) if (t - at <= ms) count++;
        this.set({ window }, count);
      }
    },
  });

  new Gauge({
    name: `${prefix}queue_depth`,
    help: 'Live jobs (pending or leased) per kind',
    labelNames: ['kind'],
    registers: [registry],
    async collect() {
      const stats = await queueStats();
      this.reset();
      for (const [kind, depth] of Object.entries(stats.depth)) this.set({ kind }, depth);
    },
  });
  new Gauge({
    name: `${prefix}queue_oldest_age_seconds`,
    help: 'Age of the oldest live job',
    registers: [registry],
    async collect() {
      this.set((await queueStats()).oldestAgeMs / 1000);
    },
  });
  new Gauge({
    name: `${prefix}dead_letters`,
    help: 'Jobs in the dead letters',
    registers: [registry],
    async collect() {
      this.set((await queueStats()).deadLetters);
    },
  });

  return {
    registry,
    received: (direction) => received.inc({ direction }),
    acknowledged(direction, outcome, seconds) {
      acknowledged.inc({ direction });
      if (outcome === 'duplicate') deduplicated.inc({ direction });
      ackSeconds.observe({ direction }, seconds);
    },
    delivered(direction, seconds) {
      delivered.inc({ direction });
      deliverySeconds.observe({ direction }, seconds);
    },
    failed: (direction, remote, code) => failed.inc({ direction, remote, code }),
    deadLettered: (direction) => deadLettered.inc({ direction }),
    remoteError: (remote, code) => remoteErrors.inc({ remote, code }),
    tokenRefreshed(accountId) {
      tokenRefreshes.inc();
      if (accountId !== undefined) accountTokenRefreshes.inc({ account: accountId });
    },
    accountMessage: (accountId, direction) => accountMessages.inc({ account: accountId, direction }),
    tokenConflict: () => tokenConflicts.inc(),
    unhashedCallback: () => unhashedCallbacks.inc(),
    shed: (reason) => shedRequests.inc({ reason }),
    userMessage(openid, conversationId) {
      lastSeen.set(openid, now());
      conversationMessages.inc({ conversation_id: conversationId });
    },
  };
}
