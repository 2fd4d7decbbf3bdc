/**
 * The durable acknowledgement of both webhooks over a store that fails: `success` / `ok` only for
 * what was stored, a short 503 (so that WeChat and Vonage send again) when the store rejects,
 * stalls past the budget or throws before it even returns a promise. The app is the real one
 * (createApp), on loopback; only the store's `enqueue` is made to fail.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { inboundJobs } from '../../../src/bridge/to-vonage/inbound-jobs';
import { planOutbound } from '../../../src/bridge/to-wechat/plan-outbound';
import { createApp } from '../../../src/http/app';
import { createLogger } from '../../../src/logger';
import { createMetrics } from '../../../src/metrics';
import { SqliteStore } from '../../../src/store/sqlite/store';
import type { Store } from '../../../src/store/store';
import { TEST_APP_ID, TEST_CONVERSATION_ID, TEST_TOKEN, captureLogs } from '../../support/bridge-harness';
import { outboundMessage, postRtcEvent } from '../../support/rtc-events';
import { pushToBridge, signedPush } from '../../support/wechat-push';

const TEXT = readFileSync(path.join(__dirname, '../../fixtures/messages/official/text.xml'), 'utf8');
const ACK_TIMEOUT_MS = 300;

type EnqueueFault = 'reject' | 'stall' | 'throw' | 'none';

interface Running {
  baseUrl: string;
  store: SqliteStore;
  logs: string[];
  storedWakeUps: () => number;
  close(): Promise<void>;
}

async function startApp(fault: EnqueueFault, options: { markSeenWritesFail?: boolean } = {}): Promise<Running> {
  const store = SqliteStore.open(':memory:');
  const failing: Store = Object.create(store) as Store;
  if (options.markSeenWritesFail) {
    // Probes (an expiry in the past) still answer; anything that would record a key on its own fails.
    failing.markSeen = (key, expiresAt) => (expiresAt > 0 ? Promise.reject(new Error('disk I/O error')) : store.markSeen(key, expiresAt));
  }
  failing.enqueue = (jobs, enqueueOptions) => {
    switch (fault) {
      case 'reject':
        return Promise.reject(new Error('connection terminated unexpectedly'));
      case 'stall':
        return new Promise(() => undefined);
      case 'throw':
        throw new Error('the store is closed');
      case 'none':
        return store.enqueue(jobs, enqueueOptions);
    }
  };
  const { lines, destination } = captureLogs();
  const logger = createLogger({ level: 'debug', destination });
  let wakeUps = 0;
  const app = createApp({
    logger,
    store: failing,
    metrics: createMetrics({ queueStats: () => store.stats() }),
    accounts: [
      {
        account: { id: 'default', token: TEST_TOKEN, appId: TEST_APP_ID, aesKeys: [] },
        jobsFor: (message) => inboundJobs(message, { conversationId: TEST_CONVERSATION_ID }),
      },
    ],
    rtc: { signatureSecret: undefined, jobFor: (event) => planOutbound(event) },
    onJobsStored: () => {
      wakeUps += 1;
    },
    checkReady: () => store.ping(),
    ackTimeoutMs: ACK_TIMEOUT_MS,
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    store,
    logs: lines,
    storedWakeUps: () => wakeUps,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await store.close();
    },
  };
}

const webhooks = {
  '/weChatEvent': {
    send: (baseUrl: string) => pushToBridge(baseUrl, TEXT, { token: TEST_TOKEN }),
    successText: 'success',
  },
  '/rtcEvent': {
    send: async (baseUrl: string) => {
      const answer = await postRtcEvent(baseUrl, outboundMessage('oUser1', { content: 'hi' }));
      return { status: answer.status, text: answer.text };
    },
    successText: 'ok',
  },
} as const;

describe.each(Object.keys(webhooks) as Array<keyof typeof webhooks>)('durable acknowledgement of %s', (route) => {
  const webhook = webhooks[route];

  test.each(['reject', 'stall', 'throw'] as const)('a store that does %s gets a 503, never the success answer', async (fault) => {
    const app = await startApp(fault);
    try {
      const startedAt = performance.now();
      const answer = await webhook.send(app.baseUrl);
      expect(answer.status).toBe(503);
      expect(answer.text).not.toBe(webhook.successText);
      expect(answer.text.length).toBeLessThan(40);
      // Within WeChat's 5-second window: the stall is cut at the budget, not waited out.
      expect(performance.now() - startedAt).toBeLessThan(ACK_TIMEOUT_MS + 2_000);
      expect(app.storedWakeUps()).toBe(0);
      expect((await app.store.stats()).depth).toEqual({});
      expect(app.logs.some((line) => line.includes('"level":50') && line.includes('503'))).toBe(true);
    } finally {
      await app.close();
    }
  });

  test('a working store gets the success answer, and the job is there', async () => {
    const app = await startApp('none');
    try {
      const answer = await webhook.send(app.baseUrl);
      expect(answer).toEqual({ status: 200, text: webhook.successText });
      expect(app.storedWakeUps()).toBe(1);
      const depth = Object.values((await app.store.stats()).depth).reduce((a, b) => a + b, 0);
      expect(depth).toBe(1);
    } finally {
      await app.close();
    }
  });
});

describe('the signed-query replay guard of /weChatEvent', () => {
  test('records its keys in the transaction of the push: taken without a write of its own, its query then refused with another body', async () => {
    const app = await startApp('none', { markSeenWritesFail: true });
    try {
      const push = signedPush(TEXT, { token: TEST_TOKEN });
      const post = (body: string) =>
        fetch(`${app.baseUrl}${push.path}`, { method: 'POST', headers: { 'content-type': 'text/xml' }, body }).then(async (r) => ({
          status: r.status,
          text: await r.text(),
        }));
      expect(await post(push.body)).toEqual({ status: 200, text: 'success' });
      // WeChat retrying: the same query, the same body.
      expect(await post(push.body)).toEqual({ status: 200, text: 'success' });
      // The same query over another body: refused, though the guard never wrote a key by itself.
      expect((await post(push.body.replace('this is a test', 'forged'))).status).toBe(401);
      expect((await app.store.stats()).depth).toEqual({ 'deliver-to-vonage': 1 });
    } finally {
      await app.close();
    }
  });
});
