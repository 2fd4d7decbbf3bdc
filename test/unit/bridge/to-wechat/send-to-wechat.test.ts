/**
 * The send-to-wechat handler against a real in-memory store, with a WeChat sender that records
 * requests. "Crashes" are simulated the way they happen: a run that never finishes (or whose
 * status write fails), then the job claimed again once its lease has expired.
 */
import { jobOf, JOB_SEND_TO_WECHAT, type JobHandlerOf, type JobOf } from '../../../../src/bridge/jobs';
import { planOutbound } from '../../../../src/bridge/to-wechat/plan-outbound';
import { createPassiveReplies } from '../../../../src/bridge/to-wechat/passive-replies';
import { createSendToWeChatHandler } from '../../../../src/bridge/to-wechat/send-to-wechat';
import { RetryableError } from '../../../../src/errors';
import { createLogger } from '../../../../src/logger';
import { SqliteStore } from '../../../../src/store/sqlite/store';
import type { JobQueue, SeenKeys } from '../../../../src/store/store';
import { parseRtcEvent } from '../../../../src/vonage/webhook';
import { UncertainDeliveryError } from '../../../../src/wechat/api-client';
import { WeChatApiError } from '../../../../src/wechat/transport';
import { waitFor } from '../../../support/wait';

const CONV = 'CON-1';
const LEASE_MS = 1_000;
const DAY_MS = 24 * 60 * 60 * 1000;

interface Setup {
  store: SqliteStore;
  clock: { now: number };
  sent: Array<Record<string, unknown>>;
  /** What the next sends do once the request is out; default: succeed. */
  behaviours: Array<() => Promise<void>>;
  /** What the next sends do while the access token is fetched or awaited (before anything is sent). */
  tokenBehaviours: Array<() => Promise<void>>;
  /** Each wait between tries to store a delivered status. */
  recordRetryDelays: number[];
  handler: JobHandlerOf<typeof JOB_SEND_TO_WECHAT>;
  /** Claims the send job (after moving the clock past any lease). */
  claimSend(): Promise<JobOf<typeof JOB_SEND_TO_WECHAT>>;
  /** The status bodies stored so far. */
  statuses(): Promise<Array<Record<string, unknown>>>;
}

function setup(
  options: { storeFor?: (store: SqliteStore) => Pick<JobQueue, 'enqueue'> & SeenKeys; sleep?: (ms: number) => Promise<void> } = {},
): Setup {
  const clock = { now: Date.UTC(2026, 10, 21, 12) };
  const store = SqliteStore.open(':memory:', { now: () => clock.now });
  const sent: Array<Record<string, unknown>> = [];
  const behaviours: Array<() => Promise<void>> = [];
  const tokenBehaviours: Array<() => Promise<void>> = [];
  const recordRetryDelays: number[] = [];
  const handler = createSendToWeChatHandler({
    // Shaped like the real client: the token first, then `beforeRequest`, then the request.
    weChat: {
      async sendCustomMessage(body, sendOptions) {
        const token = tokenBehaviours.shift();
        if (token) await token();
        await sendOptions?.beforeRequest?.();
        sent.push(body);
        const next = behaviours.shift();
        if (next) await next();
      },
    },
    store: options.storeFor ? options.storeFor(store) : store,
    logger: createLogger({ level: 'silent' }),
    now: () => clock.now,
    retryPolicy: { giveUpAfterMs: DAY_MS, backoff: { baseMs: 1_000, maxMs: 300_000 } },
    sleep: async (ms) => {
      recordRetryDelays.push(ms);
      await options.sleep?.(ms);
    },
  });
  const seenStatuses: Array<Record<string, unknown>> = [];
  return {
    store,
    clock,
    sent,
    behaviours,
    tokenBehaviours,
    recordRetryDelays,
    handler,
    async claimSend() {
      clock.now += LEASE_MS + 1;
      const [job] = await store.claim({ limit: 1, leaseMs: LEASE_MS, kinds: ['send-to-wechat'] });
      if (!job) throw new Error('no send job to claim');
      return jobOf(JOB_SEND_TO_WECHAT, job);
    },
    async statuses() {
      const jobs = await store.claim({ limit: 100, leaseMs: DAY_MS * 10, kinds: ['deliver-to-vonage'] });
      seenStatuses.push(...jobs.map((j) => (j.payload as { event: { body: Record<string, unknown> } }).event.body));
      return seenStatuses;
    },
  };
}

async function enqueueOutbound(store: SqliteStore, body: Record<string, unknown>, id = 7): Promise<void> {
  const job = planOutbound(parseRtcEvent({ type: 'custom:wechat:message', id, conversation_id: CONV, body: { direction: 'outbound', ...body } }));
  await store.enqueue([job!]);
}

describe('send-to-wechat', () => {
  test('builds the WeChat body, sends it, and stores a delivered status', async () => {
    const s = setup();
    await enqueueOutbound(s.store, { to: 'oUser', content: 'hello' });
    await s.handler(await s.claimSend());
    expect(s.sent).toEqual([{ touser: 'oUser', msgtype: 'text', text: { content: 'hello' } }]);
    expect(await s.statuses()).toEqual([{ status: 'delivered', ref_event_id: '7', to: 'oUser' }]);
  });

  test('a permanent WeChat refusal: failed status with the errcode, the job ends normally', async () => {
    const s = setup();
    s.behaviours.push(async () => {
      throw new WeChatApiError(45015, 'response out of time limit', { hint: 'user outside the 48-hour window' });
    });
    await enqueueOutbound(s.store, { to: 'oUser', content: 'hello' });
    await expect(s.handler(await s.claimSend())).resolves.toBeUndefined();
    expect(await s.statuses()).toEqual([
      {
        status: 'failed',
        ref_event_id: '7',
        to: 'oUser',
        error_code: '45015',
        error_message: 'response out of time limit — user outside the 48-hour window',
      },
    ]);
  });

  test('an uncertain delivery is reported failed and never sent again', async () => {
    const s = setup();
    s.behaviours.push(async () => {
      throw new UncertainDeliveryError('WeChat custom/send timed out after the request was sent: delivery uncertain');
    });
    await enqueueOutbound(s.store, { to: 'oUser', content: 'hello' });
    await s.handler(await s.claimSend());
    expect(await s.statuses()).toEqual([expect.objectContaining({ status: 'failed', error_code: 'uncertain' })]);
    expect(s.sent).toHaveLength(1);
  });

  test('an event that is not a valid WeChat message: failed status, WeChat never called', async () => {
    const s = setup();
    await enqueueOutbound(s.store, { to: 'oUser', msg_type: 'video' });
    await s.handler(await s.claimSend());
    expect(s.sent).toHaveLength(0);
    expect(await s.statuses()).toEqual([expect.objectContaining({ status: 'failed', error_code: 'invalid_event', error_message: expect.stringMatching(/media_id/) })]);
  });

  test('a missing `to`: failed status saying so', async () => {
    const s = setup();
    await enqueueOutbound(s.store, { content: 'hello' });
    await s.handler(await s.claimSend());
    expect(s.sent).toHaveLength(0);
    expect(await s.statuses()).toEqual([expect.objectContaining({ status: 'failed', to: '', error_code: 'missing_to', error_message: expect.stringMatching(/`to` is missing/) })]);
  });

  test('a retryable failure is rethrown for the worker, and the next run sends', async () => {
    const s = setup();
    s.behaviours.push(async () => {
      throw new RetryableError('WeChat custom/send: -1 system error');
    });
    await enqueueOutbound(s.store, { to: 'oUser', content: 'hello' });
    const first = await s.claimSend();
    await expect(s.handler(first)).rejects.toBeInstanceOf(RetryableError);
    expect(await s.statuses()).toEqual([]);
    await s.store.retry(first, s.clock.now, 'busy');
    await s.handler(await s.claimSend());
    expect(s.sent).toHaveLength(2);
    expect(await s.statuses()).toEqual([{ status: 'delivered', ref_event_id: '7', to: 'oUser' }]);
  });

  test('a retryable failure past the give-up time: failed status instead of a silent dead letter', async () => {
    const s = setup();
    await enqueueOutbound(s.store, { to: 'oUser', content: 'hello' });
    s.clock.now += DAY_MS - 60_000;
    s.behaviours.push(async () => {
      throw new RetryableError('WeChat custom/send answered HTTP 503');
    });
    await expect(s.handler(await s.claimSend())).resolves.toBeUndefined();
    expect(await s.statuses()).toEqual([
      expect.objectContaining({ status: 'failed', error_code: 'retries_exhausted', error_message: expect.stringMatching(/HTTP 503/) }),
    ]);
  });

  test('crash while sending (WeChat may have the message): the next run reports uncertain and does not send', async () => {
    const s = setup();
    s.behaviours.push(() => new Promise<void>(() => undefined)); // never answers: the process "dies" here
    await enqueueOutbound(s.store, { to: 'oUser', content: 'hello' });
    void s.handler(await s.claimSend());
    await waitFor('run 0 hands the message to WeChat', () => s.sent.length === 1);
    expect(s.sent).toHaveLength(1);

    await s.handler(await s.claimSend()); // the lease expired: another run
    expect(s.sent).toHaveLength(1);
    expect(await s.statuses()).toEqual([expect.objectContaining({ status: 'failed', error_code: 'uncertain', error_message: expect.stringMatching(/bridge stopped/) })]);
  });

  test('the status store fails after WeChat accepted: retried until stored, and the status is delivered', async () => {
    let enqueueFailures = 3;
    const s = setup({
      storeFor: (store) => ({
        markSeen: (key, expiresAt) => store.markSeen(key, expiresAt),
        enqueue: (jobs) => (enqueueFailures-- > 0 ? Promise.reject(new Error('Connection terminated unexpectedly')) : store.enqueue(jobs)),
      }),
    });
    await enqueueOutbound(s.store, { to: 'oUser', content: 'hello' });
    await expect(s.handler(await s.claimSend())).resolves.toBeUndefined();
    expect(s.sent).toHaveLength(1);
    expect(s.recordRetryDelays).toEqual([100, 200, 400]);
    expect(await s.statuses()).toEqual([{ status: 'delivered', ref_event_id: '7', to: 'oUser' }]);
  });

  test('crash after WeChat accepted, while the status store is down: no second send, a status still comes', async () => {
    let storeDown = true;
    const s = setup({
      storeFor: (store) => ({
        markSeen: (key, expiresAt) => store.markSeen(key, expiresAt),
        enqueue: (jobs) => (storeDown ? Promise.reject(new Error('disk I/O error')) : store.enqueue(jobs)),
      }),
      // The process dies during the first wait.
      sleep: () => new Promise<void>(() => undefined),
    });
    await enqueueOutbound(s.store, { to: 'oUser', content: 'hello' });
    void s.handler(await s.claimSend());
    await waitFor('run 0 waits to retry storing the status', () => s.recordRetryDelays.length === 1);
    storeDown = false;
    await s.handler(await s.claimSend());
    expect(s.sent).toHaveLength(1);
    expect(await s.statuses()).toEqual([expect.objectContaining({ status: 'failed', error_code: 'uncertain' })]);
  });

  test('crash while the access token is fetched (nothing sent yet): the next run sends normally', async () => {
    const s = setup();
    s.tokenBehaviours.push(() => new Promise<void>(() => undefined)); // the process "dies" waiting for the token
    await enqueueOutbound(s.store, { to: 'oUser', content: 'hello' });
    void s.handler(await s.claimSend());
    await waitFor('run 0 waits for the access token', () => s.tokenBehaviours.length === 0);
    expect(s.sent).toHaveLength(0);

    await s.handler(await s.claimSend());
    expect(s.sent).toHaveLength(1);
    expect(await s.statuses()).toEqual([{ status: 'delivered', ref_event_id: '7', to: 'oUser' }]);
  });

  test('a store error while the token is fetched (nothing sent yet): retried by the worker, then sent normally', async () => {
    const s = setup();
    s.tokenBehaviours.push(async () => {
      throw new Error('Connection terminated unexpectedly');
    });
    await enqueueOutbound(s.store, { to: 'oUser', content: 'hello' });
    await expect(s.handler(await s.claimSend())).rejects.toThrow('Connection terminated unexpectedly');
    expect(await s.statuses()).toEqual([]);
    await s.handler(await s.claimSend());
    expect(s.sent).toHaveLength(1);
    expect(await s.statuses()).toEqual([{ status: 'delivered', ref_event_id: '7', to: 'oUser' }]);
  });

  test('a token that cannot be had (WeChat refused the AppSecret): failed status, nothing sent, not retried', async () => {
    const s = setup();
    s.tokenBehaviours.push(async () => {
      throw new WeChatApiError(40125, 'invalid appsecret', { hint: 'check WECHAT_APP_SECRET', context: 'WeChat access token request failed' });
    });
    await enqueueOutbound(s.store, { to: 'oUser', content: 'hello' });
    await expect(s.handler(await s.claimSend())).resolves.toBeUndefined();
    expect(s.sent).toHaveLength(0);
    expect(await s.statuses()).toEqual([expect.objectContaining({ status: 'failed', error_code: '40125' })]);
  });

  test('crash after the status was stored but before the job completed: no second send, the first status stands', async () => {
    const s = setup();
    await enqueueOutbound(s.store, { to: 'oUser', content: 'hello' });
    await s.handler(await s.claimSend()); // delivered, status stored … and the job is never completed
    await s.handler(await s.claimSend());
    expect(s.sent).toHaveLength(1);
    expect(await s.statuses()).toEqual([{ status: 'delivered', ref_event_id: '7', to: 'oUser' }]);
  });

  test('a run that stopped before sending does not hide an earlier run that may have sent', async () => {
    let failProbes = false;
    const s = setup({
      storeFor: (store) => ({
        markSeen: (key, expiresAt) => (failProbes ? Promise.reject(new Error('database is locked')) : store.markSeen(key, expiresAt)),
        enqueue: (jobs) => store.enqueue(jobs),
      }),
    });
    await enqueueOutbound(s.store, { to: 'oUser', content: 'hello' });
    // Run 0 crashes mid-send. Run 1 fails before it could look at run 0 (store hiccup). Run 2 decides.
    s.behaviours.push(() => new Promise<void>(() => undefined));
    void s.handler(await s.claimSend());
    await waitFor('run 0 hands the message to WeChat', () => s.sent.length === 1);
    failProbes = true;
    await expect(s.handler(await s.claimSend())).rejects.toThrow('database is locked');
    failProbes = false;
    await s.handler(await s.claimSend());
    expect(s.sent).toHaveLength(1);
    expect(await s.statuses()).toEqual([expect.objectContaining({ status: 'failed', error_code: 'uncertain' })]);
  });

  test('a run that stopped before sending is looked past: the run before it decides', async () => {
    let failSendingMarker = true;
    const s = setup({
      storeFor: (store) => ({
        markSeen: (key, expiresAt) =>
          failSendingMarker && key.endsWith('#1:sending') ? Promise.reject(new Error('database is locked')) : store.markSeen(key, expiresAt),
        enqueue: (jobs) => store.enqueue(jobs),
      }),
    });
    await enqueueOutbound(s.store, { to: 'oUser', content: 'hello' });
    // Run 0 fails safely; run 1 fails before reaching the send (its marker write fails); run 2 must send.
    s.behaviours.push(async () => {
      throw new RetryableError('busy');
    });
    await expect(s.handler(await s.claimSend())).rejects.toBeInstanceOf(RetryableError);
    await expect(s.handler(await s.claimSend())).rejects.toThrow('database is locked');
    failSendingMarker = false;
    await s.handler(await s.claimSend());
    expect(s.sent).toHaveLength(2);
    expect(await s.statuses()).toEqual([expect.objectContaining({ status: 'delivered' })]);
  });
});

describe('send-to-wechat with media by URL', () => {
  /** A handler whose media step does what `prepare` says; sends are recorded. */
  function mediaSetup(prepare: (body: Record<string, unknown>) => Promise<Record<string, unknown>>) {
    const clock = { now: Date.UTC(2026, 10, 21, 12) };
    const store = SqliteStore.open(':memory:', { now: () => clock.now });
    const sent: Array<Record<string, unknown>> = [];
    const handler = createSendToWeChatHandler({
      weChat: { sendCustomMessage: async (body) => void sent.push(body) },
      store,
      logger: createLogger({ level: 'silent' }),
      now: () => clock.now,
      retryPolicy: { giveUpAfterMs: DAY_MS, backoff: { baseMs: 1_000, maxMs: 300_000 } },
      media: { prepare },
    });
    const claim = async () => jobOf(JOB_SEND_TO_WECHAT, (await store.claim({ limit: 1, leaseMs: LEASE_MS, kinds: ['send-to-wechat'] }))[0]!);
    const statuses = async () =>
      (await store.claim({ limit: 100, leaseMs: DAY_MS, kinds: ['deliver-to-vonage'] })).map((j) => (j.payload as { event: { body: Record<string, unknown> } }).event.body);
    return { clock, store, sent, handler, claim, statuses };
  }

  test('the uploaded media_id is what WeChat gets', async () => {
    const s = mediaSetup(async (body) => ({ ...body, media_url: undefined, media_id: 'UPLOADED' }));
    await enqueueOutbound(s.store, { to: 'oUser', msg_type: 'image', media_url: 'https://cdn.example/a.png' });
    await s.handler(await s.claim());
    expect(s.sent).toEqual([{ touser: 'oUser', msgtype: 'image', image: { media_id: 'UPLOADED' } }]);
    expect(await s.statuses()).toEqual([expect.objectContaining({ status: 'delivered' })]);
    await s.store.close();
  });

  test('WeChat busy during the upload is retried by the worker; nothing is marked as sending', async () => {
    const s = mediaSetup(async () => {
      throw new RetryableError('WeChat media/upload: -1 system error');
    });
    await enqueueOutbound(s.store, { to: 'oUser', msg_type: 'image', media_url: 'https://cdn.example/a.png' });
    await expect(s.handler(await s.claim())).rejects.toBeInstanceOf(RetryableError);
    expect(s.sent).toEqual([]);
    expect(await s.statuses()).toEqual([]);
    // Near the give-up deadline it ends with a status instead.
    s.clock.now += DAY_MS - 60_000;
    const late = await s.store.claim({ limit: 1, leaseMs: LEASE_MS, kinds: ['send-to-wechat'] });
    await s.handler(jobOf(JOB_SEND_TO_WECHAT, late[0]!));
    expect(await s.statuses()).toEqual([expect.objectContaining({ status: 'failed', error_code: 'retries_exhausted' })]);
    await s.store.close();
  });

  test('an unexpected error (a store hiccup) is rethrown for the worker, not reported as a failure', async () => {
    const s = mediaSetup(async () => {
      throw new Error('database is locked');
    });
    await enqueueOutbound(s.store, { to: 'oUser', msg_type: 'image', media_url: 'https://cdn.example/a.png' });
    await expect(s.handler(await s.claim())).rejects.toThrow('database is locked');
    expect(await s.statuses()).toEqual([]);
    await s.store.close();
  });
});

describe('send-to-wechat in auto reply mode', () => {
  test('a 48001 queues the reply; a run again after a failure right then queues it, not "uncertain"', async () => {
    const clock = { now: Date.UTC(2026, 10, 21, 12) };
    const store = SqliteStore.open(':memory:', { now: () => clock.now });
    const logger = createLogger({ level: 'silent' });
    let failDeposits = 1;
    // The mailbox write fails once, right after custom/send said 48001 (a store hiccup, or a crash).
    const flaky: typeof store = Object.create(store, {
      putToken: {
        value: async (...args: Parameters<typeof store.putToken>) => {
          if (failDeposits-- > 0) throw new Error('database is locked');
          return store.putToken(...args);
        },
      },
    });
    const passive = createPassiveReplies({ store: flaky, logger, mode: 'auto', replyTtlMs: 60_000, now: () => clock.now });
    let calls = 0;
    const handler = createSendToWeChatHandler({
      weChat: {
        async sendCustomMessage(_body, sendOptions) {
          calls += 1;
          await sendOptions?.beforeRequest?.();
          throw new WeChatApiError(48001, 'api unauthorized');
        },
      },
      store,
      logger,
      now: () => clock.now,
      passive,
    });
    await enqueueOutbound(store, { to: 'oUser', content: 'queued' });
    clock.now += 1;
    const [first] = await store.claim({ limit: 1, leaseMs: LEASE_MS, kinds: ['send-to-wechat'] });
    await expect(handler(jobOf(JOB_SEND_TO_WECHAT, first!))).rejects.toThrow('database is locked');
    await store.retry(first!, clock.now, 'database is locked');
    const [again] = await store.claim({ limit: 1, leaseMs: LEASE_MS, kinds: ['send-to-wechat'] });
    await handler(jobOf(JOB_SEND_TO_WECHAT, again!));

    expect(calls).toBe(1);
    expect((await passive.take('oUser'))?.outbound.body).toMatchObject({ content: 'queued' });
    const statuses = await store.claim({ limit: 10, leaseMs: LEASE_MS, kinds: ['deliver-to-vonage'] });
    expect(statuses).toEqual([]);
    await store.close();
  });
});
