/**
 * Wires the pieces into a running bridge: store → backends → job worker → HTTP app.
 * `main.ts` calls it with the validated environment; tests and the sandbox call it with
 * their own configuration (fake servers' URLs, a temporary database).
 */
import type { Server } from 'node:http';
import { once } from 'node:events';
import { inboundJobs } from './bridge/accept-inbound';
import { createDeliverToVonageHandler } from './bridge/deliver-to-vonage';
import { JOB_DELIVER_TO_VONAGE } from './bridge/ports';
import type { Config } from './config';
import { createApp } from './http/app';
import type { Logger } from './logger';
import { JobWorker } from './queue/worker';
import { openStore } from './store/open-store';
import type { Store } from './store/store';
import { createVonageClient } from './vonage/client';
import { createApplicationTokenSource } from './vonage/jwt';

export interface RunningBridge {
  server: Server;
  /** The port actually bound (useful with PORT=0). */
  port: number;
  store: Store;
  /** Stops accepting, lets requests and jobs in flight finish, closes the store. */
  stop(): Promise<void>;
}

export async function startBridge(config: Config, logger: Logger): Promise<RunningBridge> {
  const store = await openStore(config.databaseUrl);

  const vonage = createVonageClient({
    baseUrl: config.vonage.apiBaseUrl,
    tokenSource: createApplicationTokenSource({
      applicationId: config.vonage.applicationId,
      privateKey: config.vonage.privateKeyPem,
    }),
  });

  const worker = new JobWorker({
    store,
    logger: logger.child({ component: 'worker' }),
    handlers: {
      [JOB_DELIVER_TO_VONAGE]: createDeliverToVonageHandler({ backend: vonage }),
    },
  });

  const app = createApp({
    logger: logger.child({ component: 'http' }),
    store,
    weChat: config.weChat,
    jobsFor: (message) => inboundJobs(message, { conversationId: config.vonage.conversationId }),
    onJobsStored: () => worker.notify(),
    checkReady: () => store.ping(),
  });

  worker.start();
  const server = app.listen(config.port, config.host);
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info({ port, host: config.host, database: config.databaseUrl.split(':')[0] }, 'bridge listening');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await closed;
      await worker.stop();
      await store.close();
      logger.info('bridge stopped');
    })());

  return { server, port, store, stop };
}
