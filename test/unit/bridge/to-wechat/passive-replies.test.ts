/**
 * The passive-reply mailbox against a real store: order, one taker per reply, idempotent deposits,
 * putting back, expiry with exactly one status, the auto-mode switch.
 */
import { jobOf, JOB_EXPIRE_PASSIVE_REPLY } from '../../../../src/bridge/jobs';
import { createPassiveReplies } from '../../../../src/bridge/to-wechat/passive-replies';
import { createLogger } from '../../../../src/logger';
import { SqliteStore } from '../../../../src/store/sqlite/store';
import type { Job } from '../../../../src/store/store';

const logger = createLogger({ level: 'silent' });
const outbound = (eventId: string, content = `reply ${eventId}`) => ({
  conversationId: 'CON-1',
  eventId,
  body: { direction: 'outbound', to: 'oUser', content },
});

function setUp(mode: 'passive' | 'auto' = 'passive') {
  const clock = { now: 1_700_000_000_000 };
  const store = SqliteStore.open(':memory:', { now: () => clock.now });
  const replies = createPassiveReplies({ store, logger, mode, replyTtlMs: 60_000, now: () => clock.now, pollMs: 5 });
  /** Every status stored, in order (one user's statuses share an order key: claimed one at a time). */
  const statuses = async () => {
    const bodies: Array<Record<string, unknown>> = [];
    for (;;) {
      const jobs = await store.claim({ limit: 100, leaseMs: 60_000, kinds: ['deliver-to-vonage'] });
      if (jobs.length === 0) return bodies;
      for (const job of jobs) {
        bodies.push((job.payload as { event: { body: Record<string, unknown> } }).event.body);
        await store.complete(job);
      }
    }
  };
  return { clock, store, replies, statuses };
}

describe('the passive reply mailbox', () => {
  it('hands out replies oldest first, each to one taker, and a deposit that runs again queues nothing', async () => {
    const { replies } = setUp();
    await replies.deposit('oUser', outbound('1'));
    await replies.deposit('oUser', outbound('2'));
    await replies.deposit('oUser', outbound('1'));
    const taken = await Promise.all([replies.take('oUser'), replies.take('oUser'), replies.take('oUser')]);
    expect(taken.map((r) => r?.id).sort()).toEqual([undefined, 'CON-1:1', 'CON-1:2'].sort());
    // Taken once: a re-run of its deposit (a job that ran again after a crash) does not queue it again.
    await replies.deposit('oUser', outbound('1'));
    expect(await replies.take('oUser')).toBeUndefined();
  });

  it('puts back a reply that could not be written, first in line', async () => {
    const { replies } = setUp();
    await replies.deposit('oUser', outbound('1'));
    await replies.deposit('oUser', outbound('2'));
    const first = await replies.take('oUser');
    await replies.putBack('oUser', first!);
    expect((await replies.take('oUser'))?.id).toBe('CON-1:1');
  });

  it('wakes a waiter at once when a reply is deposited, and gives up at the deadline', async () => {
    const { replies, clock } = setUp();
    const started = Date.now();
    const waiting = replies.waitFor('oUser', clock.now + 60_000);
    setTimeout(() => void replies.deposit('oUser', outbound('9')), 20);
    expect((await waiting)?.id).toBe('CON-1:9');
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(await replies.waitFor('oUser', clock.now - 1)).toBeUndefined();
    const hungUp = new AbortController();
    hungUp.abort();
    await replies.deposit('oUser', outbound('10'));
    expect(await replies.waitFor('oUser', clock.now + 60_000, hungUp.signal)).toBeUndefined();
  });

  it('expires a reply still waiting with one failed expired status, and leaves a taken one its own', async () => {
    const { replies, store, clock, statuses } = setUp();
    await replies.deposit('oUser', outbound('1'));
    await replies.deposit('oUser', outbound('2'));
    const taken = await replies.take('oUser');
    await replies.settle(taken!, { status: 'delivered', via: 'passive' });

    clock.now += 61_000;
    const expiries: Job[] = await store.claim({ limit: 10, leaseMs: 60_000, kinds: [JOB_EXPIRE_PASSIVE_REPLY] });
    expect(expiries).toHaveLength(2);
    for (const job of expiries) await replies.expire(jobOf(JOB_EXPIRE_PASSIVE_REPLY, job));
    const bodies = await statuses();
    expect(bodies).toHaveLength(2);
    expect(bodies.find((b) => b.ref_event_id === '1')).toMatchObject({ status: 'delivered', via: 'passive' });
    expect(bodies.find((b) => b.ref_event_id === '2')).toMatchObject({ status: 'failed', error_code: 'expired' });
    expect(await replies.take('oUser')).toBeUndefined();
  });

  it('auto mode: a user is passive only after a 48001', async () => {
    const { replies } = setUp('auto');
    expect(await replies.isPassive('oUser')).toBe(false);
    expect(replies.switchesOn('45015')).toBe(false);
    expect(replies.switchesOn('48001')).toBe(true);
    await replies.switchToPassive('oUser');
    expect(await replies.isPassive('oUser')).toBe(true);
    expect(await replies.isPassive('oOther')).toBe(false);
  });
});
