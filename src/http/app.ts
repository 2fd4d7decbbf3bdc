/**
 * `createApp(deps)`: the HTTP surface, built from explicit dependencies so that tests and the
 * sandbox assemble it exactly as production does, with their own store, clock and backends.
 */
import express, { type Express, type Router } from 'express';
import type { Logger } from '../logger';
import type { BridgeMetrics } from '../metrics';
import type { NewJob, Store } from '../store/store';
import type { RtcEvent } from '../vonage/webhook';
import type { WeChatMessage } from '../wechat/message';
import { callbackPathOf, type Account } from '../accounts';
import { admitWithinBudget, DEFAULT_ACK_BUDGET_MS, DEFAULT_MAX_PENDING_ACKS, type AckLoad } from './ack-budget';
import { errorHandler } from './errors';
import { rtcWebhookRouter } from './rtc-webhook';
import { weChatWebhookRouter, type WeChatWebhookDeps } from './wechat-webhook';

export interface AppDeps {
  logger: Logger;
  store: Store;
  metrics: BridgeMetrics;
  /**
   * Each Official Account's callback route (`/weChatEvent`, `/weChatEvent/{id}`): its credentials
   * (with the message modes accepted, WECHAT_MESSAGE_MODES) and the jobs for its messages.
   */
  accounts: Array<{
    account: Pick<Account, 'id'> & WeChatWebhookDeps['weChat'];
    jobsFor: (message: WeChatMessage) => NewJob[];
    /** Passive-reply mode: this account's webhook answers may carry a reply. */
    passive?: WeChatWebhookDeps['passive'];
  }>;
  /** `/rtcEvent`: Vonage's RTC webhook. */
  rtc: {
    /** VONAGE_SIGNATURE_SECRET; undefined accepts unsigned requests. */
    signatureSecret: string | undefined;
    /** VONAGE_PREVIOUS_SIGNATURE_SECRET; accepted after the current one during a rotation. */
    previousSignatureSecret?: string | undefined;
    /** The job for an RTC event, or undefined when the bridge ignores it. */
    jobFor: (event: RtcEvent) => NewJob | undefined;
  };
  onJobsStored: () => void;
  /** `GET /media/:mediaId`: signed links to WeChat users' media (media-route.ts). */
  media?: Router;
  /** Resolves when the bridge can do its work (store reachable, workers running); rejects with the reason. */
  checkReady: () => Promise<void>;
  now?: () => number;
  /** A webhook request's arrival to its answer, at most; default 4 s (WeChat waits 5 s). */
  ackTimeoutMs?: number;
  /** Webhook requests waiting for their answer, at most; more are answered 503 on arrival. Default 1024. */
  maxPendingAcks?: number;
  /** Where the count of webhook requests waiting for their answer is kept, for the worker to yield to. */
  ackLoad?: AckLoad;
  /**
   * More routes, mounted after the bridge's own and before the 404 handler. Only the sandbox uses
   * it (its console at `/`); production passes nothing, so every other path stays a 404.
   */
  extraRoutes?: (app: Express) => void;
}

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', 'loopback, linklocal, uniquelocal');

  // Every request's arrival time, before its body is read: the acknowledgement budget counts from here.
  app.use((_req, res, next) => {
    res.locals.arrivedAt = performance.now();
    next();
  });
  const ackTimeoutMs = deps.ackTimeoutMs ?? DEFAULT_ACK_BUDGET_MS;
  // One budget for both webhooks: they share the process, its store and its event loop.
  const admit = admitWithinBudget({
    budgetMs: ackTimeoutMs,
    maxPending: deps.maxPendingAcks ?? DEFAULT_MAX_PENDING_ACKS,
    ...(deps.ackLoad ? { load: deps.ackLoad } : {}),
    logger: deps.logger,
    metrics: deps.metrics,
  });

  app.get('/healthz', (_req, res) => {
    res.status(200).type('text/plain').send('ok');
  });
  app.get('/readyz', async (_req, res) => {
    try {
      await deps.checkReady();
      res.status(200).type('text/plain').send('ready');
    } catch (error) {
      deps.logger.warn({ err: error }, 'not ready');
      res.status(503).type('text/plain').send('not ready');
    }
  });

  app.get('/metrics', async (_req, res) => {
    res.status(200).type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  // A push to another account's path fails that account's signature check: 401. Every account's
  // callback shares the process's acknowledgement budget.
  for (const { account, jobsFor, passive } of deps.accounts) {
    app.use(
      weChatWebhookRouter({
        logger: deps.logger,
        store: deps.store,
        metrics: deps.metrics,
        weChat: account,
        jobsFor: (message) => {
          deps.metrics.accountMessage(account.id, 'inbound');
          return jobsFor(message);
        },
        onJobsStored: deps.onJobsStored,
        now: deps.now ?? Date.now,
        ackTimeoutMs,
        admit,
        path: callbackPathOf(account.id),
        accountId: account.id,
        passive,
      }),
    );
  }

  app.use(
    rtcWebhookRouter({
      logger: deps.logger,
      store: deps.store,
      metrics: deps.metrics,
      signatureSecret: deps.rtc.signatureSecret,
      previousSignatureSecret: deps.rtc.previousSignatureSecret,
      jobFor: deps.rtc.jobFor,
      onJobsStored: deps.onJobsStored,
      now: deps.now ?? Date.now,
      ackTimeoutMs,
      admit,
    }),
  );

  if (deps.media) app.use(deps.media);

  deps.extraRoutes?.(app);

  app.use((_req, res) => {
    res.status(404).type('text/plain').send('not found');
  });
  app.use(errorHandler(deps.logger));
  return app;
}
