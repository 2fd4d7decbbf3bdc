/**
 * The deliver-to-vonage handler against the fake Conversation API: a retry first looks for its own
 * event, so an event whose first post went through (but whose answer was lost) is not posted twice.
 */
import { createDeliverToVonageHandler, reconcileMarkName } from '../../../../src/bridge/to-vonage/deliver-to-vonage';
import { SqliteStore } from '../../../../src/store/sqlite/store';
import { JOB_DELIVER_TO_VONAGE, type DeliverToVonagePayload, type JobOf } from '../../../../src/bridge/jobs';
import { createVonageClient } from '../../../../src/vonage/client';
import { createApplicationTokenSource } from '../../../../src/vonage/jwt';
import { startFakeVonage, type FakeVonage } from '../../../support/fake-vonage';
import { testKeyPair } from '../../../support/keys';

const APP_ID = '3c9a5b1e-0d4f-4a8e-9b6c-1f2e3d4c5b6a';
const CONVERSATION = 'CON-deliver-test';

describe('deliver-to-vonage', () => {
  let vonage: FakeVonage;
  let handler: ReturnType<typeof createDeliverToVonageHandler>;
  let client: ReturnType<typeof createVonageClient>;

  beforeEach(async () => {
    vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: APP_ID });
    client = createVonageClient({
      baseUrl: vonage.baseUrl,
      tokenSource: createApplicationTokenSource({ applicationId: APP_ID, privateKey: testKeyPair().privateKeyPem }),
    });
    handler = createDeliverToVonageHandler({ backend: client });
  });
  afterEach(() => vonage.close());

  const job = (attempts: number, body: Record<string, unknown>): JobOf<typeof JOB_DELIVER_TO_VONAGE> => ({
    id: '1',
    kind: JOB_DELIVER_TO_VONAGE,
    orderKey: 'wechat:o1',
    payload: { conversationId: CONVERSATION, event: { type: 'custom:wechat:message', body } } satisfies DeliverToVonagePayload,
    attempts,
    createdAt: Date.now(),
    lastError: undefined,
    leaseToken: 'lease-1',
    interrupted: false,
  });

  test('a first attempt posts the event', async () => {
    await handler(job(0, { direction: 'inbound', msg_id: '1', content: 'hi' }));
    expect(vonage.events.map((e) => e.body)).toEqual([{ direction: 'inbound', msg_id: '1', content: 'hi' }]);
  });

  test('a retry whose event already exists (keys in any order) does not post it again', async () => {
    await client.createEvent(CONVERSATION, { type: 'custom:wechat:message', body: { msg_id: '2', content: 'hi', direction: 'inbound' } });
    await handler(job(1, { direction: 'inbound', msg_id: '2', content: 'hi' }));
    expect(vonage.events).toHaveLength(1);
  });

  test('a retry pages back through a busy conversation to find its own event', async () => {
    await client.createEvent(CONVERSATION, { type: 'custom:wechat:message', body: { direction: 'inbound', msg_id: 'mine' } });
    for (let i = 0; i < 250; i++) {
      await client.createEvent(CONVERSATION, { type: 'custom:wechat:message', body: { direction: 'inbound', msg_id: `other-${i}` } });
    }
    await handler(job(1, { direction: 'inbound', msg_id: 'mine' }));
    expect(vonage.events.filter((e) => e.body.msg_id === 'mine')).toHaveLength(1);
    expect(vonage.events).toHaveLength(251);
  });

  test('a retry whose event is not there posts it', async () => {
    await client.createEvent(CONVERSATION, { type: 'custom:wechat:message', body: { direction: 'inbound', msg_id: '3', content: 'other' } });
    await handler(job(2, { direction: 'inbound', msg_id: '4', content: 'other' }));
    expect(vonage.events.map((e) => e.body.msg_id)).toEqual(['3', '4']);
  });

  test('an event of another type with the same body does not count', async () => {
    await client.createEvent(CONVERSATION, { type: 'custom:wechat:status', body: { direction: 'inbound', msg_id: '5' } });
    await handler(job(1, { direction: 'inbound', msg_id: '5' }));
    expect(vonage.events.map((e) => e.type)).toEqual(['custom:wechat:status', 'custom:wechat:message']);
  });

  describe('with marks (the newest event id known before the first attempt)', () => {
    let store: SqliteStore;
    beforeEach(() => {
      store = SqliteStore.open(':memory:');
      handler = createDeliverToVonageHandler({ backend: client, marks: store });
    });
    afterEach(() => store.close());

    const getsSince = (seq: number) => vonage.traffic.recent(100_000).filter((t) => t.seq > seq && t.method === 'GET').length;

    test('an answer lost after Vonage created the event: the retry finds it past 2,000 newer events, in a couple of GETs', async () => {
      await client.createEvent(CONVERSATION, { type: 'custom:wechat:message', body: { direction: 'inbound', msg_id: 'before' } });
      const mine = job(0, { direction: 'inbound', msg_id: 'mine' });
      vonage.script([{ delayMs: 0 }, { loseAnswer: true }]);
      await expect(handler(mine)).rejects.toThrow();
      expect(vonage.events.filter((e) => e.body.msg_id === 'mine')).toHaveLength(1);
      expect(await store.getToken(reconcileMarkName(mine.id))).toMatchObject({ value: '1' });
      // The conversation is busy: far more events of the same type than the old search read.
      for (let batch = 0; batch < 21; batch++) {
        await Promise.all(
          Array.from({ length: 100 }, (_, i) =>
            client.createEvent(CONVERSATION, { type: 'custom:wechat:message', body: { direction: 'inbound', msg_id: `other-${batch}-${i}` } }),
          ),
        );
      }
      const seq = vonage.traffic.recent(1)[0]!.seq;
      await handler({ ...mine, attempts: 1 });
      expect(vonage.events.filter((e) => e.body.msg_id === 'mine')).toHaveLength(1);
      expect(getsSince(seq)).toBeLessThanOrEqual(2);
    });

    test('a retry whose first post never landed posts it once, after reading only the events since', async () => {
      const mine = job(0, { direction: 'inbound', msg_id: 'lost-request' });
      vonage.script([{ delayMs: 0 }, { status: 503 }]);
      await expect(handler(mine)).rejects.toThrow();
      await client.createEvent(CONVERSATION, { type: 'custom:wechat:message', body: { direction: 'inbound', msg_id: 'later' } });
      await handler({ ...mine, attempts: 1 });
      expect(vonage.events.map((e) => e.body.msg_id)).toEqual(['later', 'lost-request']);
    });

    test('after an outage that Vonage answered with 503, a backlog of retries posts without searching the conversation', async () => {
      const backlog = Array.from({ length: 40 }, (_, i) => ({ ...job(0, { direction: 'inbound', msg_id: `backlog-${i}` }), id: String(100 + i) }));
      // The first entry is the GET of the conversation's newest event (once), then the posts.
      vonage.script([{ delayMs: 0 }, ...backlog.map(() => ({ status: 503, retryAfter: '60' }))]);
      for (const each of backlog) await expect(handler(each)).rejects.toThrow('503');
      expect(vonage.events).toHaveLength(0);

      const seq = vonage.traffic.recent(1)[0]!.seq;
      for (const each of backlog) await handler({ ...each, attempts: 1 });
      expect(vonage.events.map((e) => e.body.msg_id)).toEqual(backlog.map((_, i) => `backlog-${i}`));
      // Each retry of the old search read every event its predecessors had posted since the outage.
      expect(getsSince(seq)).toBe(0);
    });

    test('a refused attempt, then one whose answer was lost: the next retry still finds the event and does not post it twice', async () => {
      const mine = job(0, { direction: 'inbound', msg_id: 'refused-then-lost' });
      vonage.script([{ delayMs: 0 }, { status: 429, retryAfter: '1' }]);
      await expect(handler(mine)).rejects.toThrow('429');
      vonage.script([{ loseAnswer: true }]);
      await expect(handler({ ...mine, attempts: 1 })).rejects.toThrow();
      expect(vonage.events.filter((e) => e.body.msg_id === 'refused-then-lost')).toHaveLength(1);
      await handler({ ...mine, attempts: 2 });
      expect(vonage.events.filter((e) => e.body.msg_id === 'refused-then-lost')).toHaveLength(1);
    });

    test('a refused attempt, then one that posted before the process died: the interrupted run finds the event and does not post it twice', async () => {
      const mine = job(0, { direction: 'inbound', msg_id: 'refused-then-crashed' });
      vonage.script([{ delayMs: 0 }, { status: 503 }]);
      await expect(handler(mine)).rejects.toThrow('503');
      // The second attempt posts; the process dies before the worker records it (no failure, no mark).
      await handler({ ...mine, attempts: 1 });
      expect(vonage.events.filter((e) => e.body.msg_id === 'refused-then-crashed')).toHaveLength(1);
      // The claim after the crash marks the run interrupted: the refusal's mark no longer tells the whole story.
      await handler({ ...mine, attempts: 2, interrupted: true });
      expect(vonage.events.filter((e) => e.body.msg_id === 'refused-then-crashed')).toHaveLength(1);
    });
  });
});
