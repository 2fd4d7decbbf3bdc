/**
 * Wires the pieces into a running bridge: store → backends → job worker → HTTP app.
 * `main.ts` calls it with the validated environment; tests and the sandbox call it with
 * their own configuration (fake servers' URLs, a temporary database).
 *
 * For every configured Official Account: its WeChat client and access tokens, its conversations
 * (fixed or per user), and its media both ways (each fetches and uploads with its own access token):
 * signed `media_url` links in inbound events (when `PUBLIC_URL` is set) served by `/media/…` from a
 * disk cache, and agents' `media_url` uploads for outbound image, voice, video.
 */
import type { Server } from 'node:http';
import { once } from 'node:events';
import path from 'node:path';
import express, { type Router } from 'express';
import { createConversationRouter } from './bridge/to-vonage/conversation-routing';
import { describeConversationMode, inboundTargetOf, routesConversations } from './bridge/to-vonage/conversation-mode';
import { inboundJobs } from './bridge/to-vonage/inbound-jobs';
import { createDeliverToVonageHandler } from './bridge/to-vonage/deliver-to-vonage';
import {
  JOB_DELIVER_TO_VONAGE,
  JOB_EXPIRE_PASSIVE_REPLY,
  JOB_REPORT_TEMPLATE_RESULT,
  JOB_SEND_TO_WECHAT,
  JOB_SEND_TYPING_TO_WECHAT,
  registerJobHandlers,
} from './bridge/jobs';
import { createReplyWindowTracker, withReplyWindow } from './bridge/reply-window';
import { createSendToWeChatHandler } from './bridge/to-wechat/send-to-wechat';
import { createReportTemplateResultHandler } from './bridge/to-wechat/template-result';
import { createSendTypingToWeChatHandler } from './bridge/to-wechat/send-typing-to-wechat';
import { createPassiveReplies } from './bridge/to-wechat/passive-replies';
import { planOutbound } from './bridge/to-wechat/plan-outbound';
import { createRecipientResolver } from './bridge/to-wechat/recipient';
import { templateResultJob } from './bridge/to-wechat/template-result';
import { fetchAgentMedia } from './bridge/media/fetch-agent-media';
import { MediaFileCache } from './bridge/media/cache';
import { accountMediaLinkKey, MEDIA_LINK_MAX_TTL_MS, mediaLink, mediaRoutePathOf } from './bridge/media/links';
import { createOutboundMedia, type OutboundMedia } from './bridge/media/outbound-media';
import { mediaRouter } from './http/media-route';
import { createPassiveAnswerer } from './http/passive-answer';
import { openPostgresSignal } from './store/postgres/signal';
import { isDefaultAccount, type Account } from './accounts';
import { accountsOf, type Config } from './config';
import type { AckLoad } from './http/ack-budget';
import { createApp, type AppDeps } from './http/app';
import { createSecretScrubber, type Logger } from './logger';
import { createMetrics, type BridgeMetrics } from './metrics';
import { ignoredProxySettings } from './node-version';
import { createHttpRequester } from './outbound-http';
import { observeJobOutcome } from './bridge/job-metrics';
import { DEFAULT_RETRY_POLICY } from './queue/retry-policy';
import { JobWorker } from './queue/worker';
import { openStore } from './store/open-store';
import type { NewJob, Store } from './store/store';
import { createVonageClient } from './vonage/client';
import { createApplicationTokenSource } from './vonage/jwt';
import { createWeChatApiClient } from './wechat/api-client';
import { createWeChatMediaClient } from './wechat/media';
import type { WeChatMessage } from './wechat/message';
import { AccessTokenManager } from './wechat/token-manager';
import type { AccessTokenSource } from './wechat/transport';

/**
 * Jobs in flight at once. Nearly all of a job's time is waiting for WeChat or Vonage, so more than the
 * worker's default keeps delivery up with acknowledgement under load (per-user order is kept by the
 * store whatever this is).
 */
const WORKER_CONCURRENCY = 32;
/**
 * With this many webhook requests waiting for their answer, the worker runs only
 * YIELDING_CONCURRENCY jobs at once: acknowledging first keeps WeChat's answers fast under a burst
 * (every message is stored before its answer, so none is lost), and deliveries catch up after it.
 */
const ACK_PRESSURE_PENDING = 16;
const YIELDING_CONCURRENCY = 4;

/** Requests in flight get this long to be answered at a stop (a webhook's answer is due within 5 s anyway). */
const STOP_GRACE_MS = 5_000;

/** One retry policy: the worker retries and gives up by it, and the outbound handler reports a send it would give up. */
const RETRY_POLICY = DEFAULT_RETRY_POLICY;

export interface RunningBridge {
  server: Server;
  /** The port actually bound (useful with PORT=0). */
  port: number;
  store: Store;
  metrics: BridgeMetrics;
  /** Stops accepting, lets requests and jobs in flight finish, closes the store. */
  stop(): Promise<void>;
}

export interface BridgeOptions {
  /** Extra HTTP routes (the sandbox's console); see `AppDeps.extraRoutes`. */
  extraRoutes?: AppDeps['extraRoutes'];
  /** Arrival to answer for a webhook request (default 4 s); see `AppDeps.ackTimeoutMs`. */
  ackTimeoutMs?: AppDeps['ackTimeoutMs'];
  /** Webhook requests waiting for their answer, at most (default 1024); see `AppDeps.maxPendingAcks`. */
  maxPendingAcks?: AppDeps['maxPendingAcks'];
}

/** The literal secret values of a configuration, for `createSecretScrubber` and `createLogger({ secrets })`. */
export function configuredSecrets(config: Config): string[] {
  return [config.weChat.appSecret, ...accountsOf(config).map((account) => account.appSecret), config.vonage.privateKeyPem, config.vonage.signatureSecret].filter(
    (secret): secret is string => typeof secret === 'string' && secret !== '',
  );
}

export async function startBridge(config: Config, logger: Logger, options: BridgeOptions = {}): Promise<RunningBridge> {
  // This process runs the workers: jobs a crashed predecessor had leased are ours to run now.
  const store = await openStore(config.databaseUrl, { releaseLeasesOnOpen: true, logger: logger.child({ component: 'store' }) });

  const metrics = createMetrics({ queueStats: () => store.stats() });
  // Remote error texts are scrubbed of these (and of token-shaped text) before they are stored or shown.
  const scrub = createSecretScrubber(configuredSecrets(config));

  // One pool of keep-alive sockets for every call to Vonage and to WeChat's JSON APIs, whichever account.
  const http = createHttpRequester();
  const ignoredProxy = ignoredProxySettings(process.env, process.versions.node);
  if (ignoredProxy.length > 0) {
    logger.warn({ ignored: ignoredProxy, node: process.versions.node }, 'proxy variables are ignored on this Node.js (24.5 or newer honours them): calls to Vonage and WeChat go direct');
  }
  const vonage = createVonageClient({
    baseUrl: config.vonage.apiBaseUrl,
    http,
    tokenSource: createApplicationTokenSource({
      applicationId: config.vonage.applicationId,
      privateKey: config.vonage.privateKeyPem,
    }),
  });

  // Per account: one access token for every send, shared through the store with every process on
  // the database (keyed by AppID), with one refresher, and the API client that sends with it.
  const accounts = accountsOf(config);
  const weChatOf = new Map(
    accounts.map((account) => {
      const context = isDefaultAccount(account.id) ? {} : { account: account.id };
      const tokens = new AccessTokenManager({
        appId: account.appId,
        appSecret: account.appSecret,
        baseUrl: config.weChat.apiBaseUrl,
        store,
        http,
        logger: logger.child({ component: 'wechat-token', ...context }),
        onRefresh: () => metrics.tokenRefreshed(account.id),
      });
      const client = createWeChatApiClient({
        baseUrl: config.weChat.apiBaseUrl,
        tokens,
        http,
        logger: logger.child({ component: 'wechat-api', ...context }),
        onErrcode: (errcode) => metrics.remoteError('wechat', String(errcode)),
        onTokenConflict: () => metrics.tokenConflict(),
      });
      return [account.id, { tokens, client }] as const;
    }),
  );
  const weChatOfAccount = ofAccount(weChatOf);
  const firstAccountId = accounts[0]!.id;
  // Per account: the jobs for its messages and its media both ways.
  const relayOf = new Map(
    accounts.map((account) => [account.id, wireAccountRelay(account, { config, store, tokens: weChatOfAccount(account.id).tokens, logger })] as const),
  );
  const relayOfAccount = ofAccount(relayOf);
  const accountOf = (accountId: string) => ({ weChat: weChatOfAccount(accountId).client, media: relayOfAccount(accountId).outboundMedia });
  // Per-user conversations (any account without a conversation id) are found or made by the delivery worker.
  const router = routesConversations(accounts)
    ? createConversationRouter({ directory: vonage, store, logger: logger.child({ component: 'conversation-routing' }) })
    : undefined;
  const recipientOf = createRecipientResolver(accounts, store);
  const mediaRoutes = express.Router();
  for (const relay of relayOf.values()) mediaRoutes.use(relay.mediaRoute);

  // Passive-reply mode (WECHAT_REPLY_MODE): replies ride on the answers to WeChat's pushes. The expiry
  // handler runs in every mode, so that replies queued before a switch back still get their status.
  const replies = config.replies ?? { mode: 'customer-service', holdingText: undefined, replyTtlMs: 24 * 60 * 60 * 1000 };
  let wakeWorker = (): void => undefined;
  // Several instances on PostgreSQL: a reply stored by one wakes the push another one holds.
  const replySignal =
    replies.mode !== 'customer-service' && /^postgres(ql)?:\/\//i.test(config.databaseUrl)
      ? await openPostgresSignal(config.databaseUrl, 'wechat_passive_replies', logger.child({ component: 'passive-replies' }))
      : undefined;
  const passiveReplies = createPassiveReplies({
    ...(replySignal ? { signal: replySignal } : {}),
    store,
    logger: logger.child({ component: 'passive-replies' }),
    mode: replies.mode,
    replyTtlMs: replies.replyTtlMs,
    onJobsStored: () => wakeWorker(),
    metrics,
  });
  const passive = replies.mode === 'customer-service' ? undefined : passiveReplies;
  // Who can still get a free-form message, shared through the store with every instance.
  const replyWindows = createReplyWindowTracker({ store, ...(config.replyWindow ? { rules: config.replyWindow } : {}) });

  const ackLoad: AckLoad = { pending: 0 };
  const worker = new JobWorker({
    store,
    logger: logger.child({ component: 'worker' }),
    ...RETRY_POLICY,
    concurrency: WORKER_CONCURRENCY,
    concurrencyNow: () => (ackLoad.pending >= ACK_PRESSURE_PENDING ? YIELDING_CONCURRENCY : WORKER_CONCURRENCY),
    onOutcome: (job, outcome, error) => observeJobOutcome(metrics, job, outcome, error),
    scrub,
    handlers: registerJobHandlers({
      [JOB_DELIVER_TO_VONAGE]: withReplyWindow(createDeliverToVonageHandler({ backend: vonage, router, marks: store }), replyWindows),
      [JOB_SEND_TO_WECHAT]: createSendToWeChatHandler({
        weChat: weChatOfAccount(firstAccountId).client,
        accountOf,
        store,
        replyWindows,
        logger: logger.child({ component: 'send-to-wechat' }),
        scrub,
        // The handler reports "failed" itself before the worker would give up silently.
        retryPolicy: RETRY_POLICY,
        metrics,
        recipientOf,
        media: relayOfAccount(firstAccountId).outboundMedia,
        ...(passive ? { passive } : {}),
      }),
      [JOB_EXPIRE_PASSIVE_REPLY]: (job) => passiveReplies.expire(job),
      [JOB_REPORT_TEMPLATE_RESULT]: createReportTemplateResultHandler({ store, logger: logger.child({ component: 'template-result' }) }),
      [JOB_SEND_TYPING_TO_WECHAT]: createSendTypingToWeChatHandler({
        weChat: weChatOfAccount(firstAccountId).client,
        accountOf,
        logger: logger.child({ component: 'send-typing-to-wechat' }),
        recipientOf,
        ...(passive ? { isPassive: (openid: string) => passive.isPassive(openid) } : {}),
      }),
    }),
  });

  wakeWorker = () => worker.notify();

  const app = createApp({
    logger: logger.child({ component: 'http' }),
    store,
    metrics,
    // WECHAT_MESSAGE_MODES applies to every account's callback.
    accounts: accounts.map((account) => ({
      account: { ...account, ...(config.weChat.messageModes ? { messageModes: config.weChat.messageModes } : {}) },
      jobsFor: relayOfAccount(account.id).jobsFor,
      ...(passive
        ? {
            passive: createPassiveAnswerer({
              replies: passive,
              store,
              logger: logger.child({ component: 'passive-answer', ...(isDefaultAccount(account.id) ? {} : { account: account.id }) }),
              accountId: account.id,
              weChat: account,
              holdingText: replies.holdingText,
              now: Date.now,
            }),
          }
        : {}),
    })),
    rtc: { signatureSecret: config.vonage.signatureSecret, previousSignatureSecret: config.vonage.previousSignatureSecret, jobFor: (event) => planOutbound(event, { accounts }) },
    onJobsStored: () => worker.notify(),
    media: mediaRoutes,
    checkReady: () => store.ping(),
    extraRoutes: options.extraRoutes,
    ackTimeoutMs: options.ackTimeoutMs,
    maxPendingAcks: options.maxPendingAcks,
    ackLoad,
  });

  for (const relay of relayOf.values()) await relay.cache.start();
  logModes(config, accounts, logger);
  worker.start();
  const server = app.listen(config.port, config.host);
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info({ port, host: config.host, database: config.databaseUrl.split(':')[0] }, 'bridge listening');

  // While stopping, a keep-alive client (a browser, WeChat's own servers) could keep sending on a
  // socket it already has, and `server.close()` waits for every socket: each answer then closes its
  // socket, idle sockets close at once, and none outlives the grace.
  let draining = false;
  server.prependListener('request', (_req, res) => {
    if (draining) res.setHeader('Connection', 'close');
  });
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      draining = true;
      server.keepAliveTimeout = 1;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const grace = setTimeout(() => server.closeAllConnections(), STOP_GRACE_MS);
      await closed;
      clearTimeout(grace);
      await worker.stop();
      for (const relay of relayOf.values()) await relay.cache.stop();
      // No job runs any more: the pooled sockets to Vonage and WeChat can go.
      http.close();
      await replySignal?.close();
      await store.close();
      logger.info('bridge stopped');
    })());

  return { server, port, store, metrics, stop };
}

/** The lookup of what each account has; an account that is not configured is a bug, never a request's fault. */
function ofAccount<T>(byAccount: ReadonlyMap<string, T>): (accountId: string) => T {
  return (accountId) => {
    const found = byAccount.get(accountId);
    if (found === undefined) throw new Error(`no account ${accountId} is configured`);
    return found;
  };
}

/** One account's relay: the jobs for its messages, its media cache and route, and its uploader of agents' media. */
interface AccountRelay {
  /** The jobs for an accepted WeChat message (webhook path: pure apart from the clock). */
  jobsFor: (message: WeChatMessage) => NewJob[];
  cache: MediaFileCache;
  /** `GET /media/…` of the account. */
  mediaRoute: Router;
  outboundMedia: OutboundMedia;
}

function wireAccountRelay(
  account: Account,
  deps: { config: Config; store: Store; tokens: AccessTokenSource; logger: Logger },
): AccountRelay {
  const { config, store, logger } = deps;
  const now = Date.now;
  const media = config.media ?? {};
  const publicUrl = config.publicUrl;
  const cacheRoot = media.cacheDir ?? './data/media';
  const routePath = mediaRoutePathOf(account.id);
  const linkKey = accountMediaLinkKey(account.id, { appSecret: account.appSecret, linkSecret: media.linkSecret });
  // Links are minted when the message is accepted and last as long as WeChat keeps the file.
  const mediaUrl =
    publicUrl === undefined ? undefined : (mediaId: string) => mediaLink(publicUrl, linkKey, mediaId, now() + MEDIA_LINK_MAX_TTL_MS, routePath);
  const weChatMedia = createWeChatMediaClient({ baseUrl: config.weChat.apiBaseUrl, tokens: deps.tokens, now });
  const accountLogger = isDefaultAccount(account.id) ? logger : logger.child({ account: account.id });
  // The default account keeps the cache directory it had; a media_id is only unique within its account.
  const cacheDir = isDefaultAccount(account.id) ? cacheRoot : path.join(cacheRoot, 'accounts', account.id);
  const cache = new MediaFileCache({ dir: cacheDir, now, logger: accountLogger.child({ component: 'media-cache' }) });
  const target = inboundTargetOf(account);
  return {
    // Every message goes to the conversation; a template message's result also becomes its status.
    jobsFor: (message) => {
      const receivedAt = now();
      const jobs: NewJob[] = inboundJobs(message, target, { receivedAt, ...(mediaUrl ? { mediaUrl } : {}) });
      const templateResult = templateResultJob(message, receivedAt, account.id);
      return templateResult === undefined ? jobs : [...jobs, templateResult];
    },
    cache,
    mediaRoute: mediaRouter({ linkKey, cache, weChatMedia, logger: accountLogger.child({ component: 'media' }), now, routePath }),
    outboundMedia: createOutboundMedia({
      store,
      weChatMedia,
      fetchMedia: (url, type) => fetchAgentMedia(url, type, { allowPrivateNetworks: media.allowPrivateNetworks === true }),
      logger: accountLogger.child({ component: 'outbound-media' }),
      accountId: account.id,
    }),
  };
}

/** What the bridge says at start about how it is set up. */
function logModes(config: Config, accounts: readonly Account[], logger: Logger): void {
  for (const account of accounts) {
    const { fields, message } = describeConversationMode(account);
    logger.info(fields, message);
  }
  if (config.publicUrl === undefined) {
    logger.info('PUBLIC_URL is not set: inbound image, voice and video events carry no media_url (set it to give agents links to the files)');
  }
  if (config.media?.allowPrivateNetworks === true) logger.warn('agent media_url may be http and on private addresses (tests and sandbox only)');
}
