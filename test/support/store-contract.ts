/**
 * The behaviour every `Store` implementation must have, as a reusable jest suite: the SQLite store
 * runs it today, a PostgreSQL store will run the same suite.
 *
 * `makeStore` gives a fresh, empty store whose clock the suite controls with `setNow`. A store that
 * lives in a file (or a server) passes `{ durable: true }` and a `reopen` in its fixture, and the
 * suite then also checks that what was stored survives closing and reopening.
 */
import type { Job, NewJob, Store } from '../../src/store/store';

export interface StoreFixture {
  store: Store;
  setNow: (ms: number) => void;
  cleanup: () => Promise<void>;
  /** Closes the store and opens it again on the same data (durable stores only); returns the new store. */
  reopen?: () => Promise<Store>;
}

export interface StoreContractOptions {
  /** Register the durability tests (needs `reopen` in the fixture). */
  durable?: boolean;
}

const T0 = 1_700_000_000_000;
const LEASE = 30_000;

export function describeStoreContract(
  name: string,
  makeStore: () => Promise<StoreFixture>,
  options: StoreContractOptions = {},
): void {
  describe(`Store contract: ${name}`, () => {
    let fixture: StoreFixture;
    let store: Store;
    let now: number;
    const setNow = (ms: number) => {
      now = ms;
      fixture.setNow(ms);
    };
    const advance = (ms: number) => setNow(now + ms);
    const job = (orderKey: string, payload: unknown, extra: Partial<NewJob> = {}): NewJob => ({
      kind: 'deliver',
      orderKey,
      payload,
      ...extra,
    });
    const claimAll = (limit = 100, kinds?: string[]) =>
      store.claim(kinds ? { limit, leaseMs: LEASE, kinds } : { limit, leaseMs: LEASE });
    const payloads = (jobs: Job[]) => jobs.map((claimed) => claimed.payload);

    beforeEach(async () => {
      fixture = await makeStore();
      store = fixture.store;
      setNow(T0);
    });

    afterEach(async () => {
      await fixture.cleanup();
    });

    describe('enqueue and claim', () => {
      test('a stored job is claimed with its fields, attempts 0 and createdAt = now', async () => {
        const payload = { text: '你好 👋', msgId: '24089845839485739485', nested: { list: [1, null, true] } };
        await expect(store.enqueue([job('user-a', payload)])).resolves.toEqual([{ outcome: 'stored' }]);

        const [claimed, ...rest] = await claimAll();
        expect(rest).toEqual([]);
        expect(claimed).toEqual({
          id: expect.any(String),
          kind: 'deliver',
          orderKey: 'user-a',
          payload,
          attempts: 0,
          createdAt: T0,
          lastError: undefined,
        });
      });

      test('enqueue of no jobs resolves to no results', async () => {
        await expect(store.enqueue([])).resolves.toEqual([]);
      });

      test('results follow the order of the jobs in one call', async () => {
        await store.enqueue([job('a', 0, { dedupKey: 'k1' })]);
        const results = await store.enqueue([
          job('a', 1, { dedupKey: 'k2' }),
          job('a', 2, { dedupKey: 'k1' }),
          job('a', 3),
          job('a', 4, { dedupKey: 'k2' }),
        ]);
        expect(results.map((result) => result.outcome)).toEqual(['stored', 'duplicate', 'stored', 'duplicate']);
      });

      test('claim respects the limit and returns the oldest jobs first', async () => {
        for (let i = 0; i < 5; i += 1) {
          await store.enqueue([job(`user-${i}`, i)]);
          advance(1);
        }
        expect(payloads(await claimAll(2))).toEqual([0, 1]);
        expect(payloads(await claimAll(10))).toEqual([2, 3, 4]);
        expect(await claimAll(10)).toEqual([]);
      });

      test('claim with kinds only takes those kinds', async () => {
        await store.enqueue([job('a', 'x', { kind: 'send' }), job('b', 'y', { kind: 'deliver' })]);
        expect(payloads(await claimAll(10, ['send']))).toEqual(['x']);
        expect(await claimAll(10, ['other'])).toEqual([]);
        expect(payloads(await claimAll(10))).toEqual(['y']);
      });

      test('a job with runAt in the future waits for it', async () => {
        await store.enqueue([job('a', 'later', { runAt: T0 + 5_000 })]);
        expect(await claimAll()).toEqual([]);
        advance(4_999);
        expect(await claimAll()).toEqual([]);
        advance(1);
        expect(payloads(await claimAll())).toEqual(['later']);
      });

      test('complete removes the job; completing an unknown id is harmless', async () => {
        await store.enqueue([job('a', 1)]);
        const [claimed] = await claimAll();
        await store.complete(claimed!.id);
        await store.complete(claimed!.id);
        await store.complete('no-such-job');
        advance(LEASE + 1);
        expect(await claimAll()).toEqual([]);
        expect((await store.stats()).depth).toEqual({});
      });
    });

    describe('dedup', () => {
      test('a dedup key already stored by an earlier call is a duplicate', async () => {
        await expect(store.enqueue([job('a', 1, { dedupKey: 'msg-1' })])).resolves.toEqual([{ outcome: 'stored' }]);
        await expect(store.enqueue([job('a', 2, { dedupKey: 'msg-1' })])).resolves.toEqual([{ outcome: 'duplicate' }]);
        expect(payloads(await claimAll())).toEqual([1]);
      });

      test('the dedup key outlives its job (completed or dead-lettered)', async () => {
        await store.enqueue([job('a', 1, { dedupKey: 'msg-1' }), job('b', 2, { dedupKey: 'msg-2' })]);
        const [first, second] = await claimAll();
        await store.complete(first!.id);
        await store.deadLetter(second!.id, 'broken');
        advance(24 * 60 * 60 * 1000);
        const again = await store.enqueue([job('a', 1, { dedupKey: 'msg-1' }), job('b', 2, { dedupKey: 'msg-2' })]);
        expect(again.map((result) => result.outcome)).toEqual(['duplicate', 'duplicate']);
      });

      test('concurrent calls with the same dedup key store it exactly once', async () => {
        const calls = [1, 2, 3].map((n) => store.enqueue([job('a', n, { dedupKey: 'same' })]));
        const outcomes = (await Promise.all(calls)).map(([result]) => result!.outcome);
        expect(outcomes).toEqual(['stored', 'duplicate', 'duplicate']);
        expect(payloads(await claimAll())).toEqual([1]);
      });

      test('jobs without a dedup key are never duplicates', async () => {
        const results = await store.enqueue([job('a', 1), job('a', 1)]);
        expect(results).toEqual([{ outcome: 'stored' }, { outcome: 'stored' }]);
        expect((await store.stats()).depth).toEqual({ deliver: 2 });
      });

      test('a call with an unserialisable payload is rejected without affecting others', async () => {
        const good = store.enqueue([job('a', 'ok', { dedupKey: 'good' })]);
        const bad = store.enqueue([job('b', 'fine'), job('b', { n: BigInt(1) })]);
        await expect(bad).rejects.toThrow();
        await expect(good).resolves.toEqual([{ outcome: 'stored' }]);
        expect(payloads(await claimAll())).toEqual(['ok']);
      });
    });

    describe('per-key order and leases', () => {
      test('only the oldest live job of a key is claimable; keys run in parallel', async () => {
        await store.enqueue([job('a', 'a1'), job('b', 'b1'), job('a', 'a2'), job('c', 'c1'), job('b', 'b2')]);
        const first = await claimAll();
        expect(payloads(first)).toEqual(['a1', 'b1', 'c1']);
        expect(await claimAll()).toEqual([]);

        await store.complete(first[0]!.id);
        expect(payloads(await claimAll())).toEqual(['a2']);
        await store.complete(first[1]!.id);
        await store.complete(first[2]!.id);
        expect(payloads(await claimAll())).toEqual(['b2']);
      });

      test('a leased job is not claimed again until its lease expires, then it is taken over', async () => {
        await store.enqueue([job('a', 'a1'), job('a', 'a2')]);
        const [leased] = await claimAll();
        advance(LEASE - 1);
        expect(await claimAll()).toEqual([]);
        advance(1);
        const [takenOver, ...rest] = await claimAll();
        expect(rest).toEqual([]);
        expect(takenOver).toMatchObject({ id: leased!.id, payload: 'a1', attempts: 1 });
        // The new lease holds for its full term.
        advance(LEASE - 1);
        expect(await claimAll()).toEqual([]);
      });

      test('retry records the error, waits until runAt, and blocks the later jobs of its key', async () => {
        await store.enqueue([job('a', 'a1'), job('a', 'a2'), job('b', 'b1')]);
        const [a1, b1] = await claimAll();
        await store.retry(a1!.id, T0 + 10_000, 'HTTP 503');
        await store.complete(b1!.id);

        advance(9_999);
        expect(await claimAll()).toEqual([]);
        advance(1);
        const [again, ...rest] = await claimAll();
        expect(rest).toEqual([]);
        expect(again).toMatchObject({ id: a1!.id, payload: 'a1', attempts: 1, lastError: 'HTTP 503' });

        await store.complete(again!.id);
        expect(payloads(await claimAll())).toEqual(['a2']);
      });

      test('attempts count every claim', async () => {
        await store.enqueue([job('a', 'a1')]);
        for (let expected = 0; expected < 3; expected += 1) {
          const [claimed] = await claimAll();
          expect(claimed!.attempts).toBe(expected);
          await store.retry(claimed!.id, now, `failure ${expected}`);
        }
      });
    });

    describe('dead letters', () => {
      test('dead-lettering a job unblocks its key and keeps it visible', async () => {
        await store.enqueue([job('a', 'a1'), job('a', 'a2')]);
        const [a1] = await claimAll();
        advance(1_000);
        await store.deadLetter(a1!.id, 'permanent failure (code 45015): out of window');

        expect(payloads(await claimAll())).toEqual(['a2']);
        expect(await store.listDeadLetters()).toEqual([
          {
            id: a1!.id,
            kind: 'deliver',
            orderKey: 'a',
            payload: 'a1',
            attempts: 1,
            createdAt: T0,
            deadAt: T0 + 1_000,
            reason: 'permanent failure (code 45015): out of window',
          },
        ]);
        expect((await store.stats()).deadLetters).toBe(1);
      });

      test('a job waiting for retry can be dead-lettered too', async () => {
        await store.enqueue([job('a', 'a1'), job('a', 'a2')]);
        const [a1] = await claimAll();
        await store.retry(a1!.id, T0 + 60_000, 'HTTP 500');
        await store.deadLetter(a1!.id, 'given up');
        expect(payloads(await claimAll())).toEqual(['a2']);
      });

      test('dead letters are listed newest first, with a limit', async () => {
        await store.enqueue([job('a', 1), job('b', 2), job('c', 3)]);
        const claimed = await claimAll();
        for (const each of claimed) {
          advance(10);
          await store.deadLetter(each.id, `reason ${String(each.payload)}`);
        }
        expect((await store.listDeadLetters()).map((dead) => dead.payload)).toEqual([3, 2, 1]);
        expect((await store.listDeadLetters({ limit: 2 })).map((dead) => dead.payload)).toEqual([3, 2]);
      });

      test('replay puts a dead letter back as a fresh job and removes it from the dead letters', async () => {
        await store.enqueue([job('a', { text: 'hi' }, { kind: 'send' })]);
        const [original] = await claimAll();
        await store.retry(original!.id, now, 'HTTP 500');
        const [again] = await claimAll();
        await store.deadLetter(again!.id, 'gave up after 24 h: HTTP 500');

        advance(60_000);
        const [dead] = await store.listDeadLetters();
        await expect(store.replayDeadLetter(dead!.id)).resolves.toBe(true);
        expect(await store.listDeadLetters()).toEqual([]);
        expect((await store.stats()).deadLetters).toBe(0);

        const [replayed, ...rest] = await claimAll();
        expect(rest).toEqual([]);
        expect(replayed).toEqual({
          id: expect.any(String),
          kind: 'send',
          orderKey: 'a',
          payload: { text: 'hi' },
          attempts: 0,
          createdAt: T0 + 60_000,
          lastError: undefined,
        });
        expect(replayed!.id).not.toBe(original!.id);
        await expect(store.replayDeadLetter(dead!.id)).resolves.toBe(false);
      });

      test('replaying an unknown dead letter returns false', async () => {
        await expect(store.replayDeadLetter('12345')).resolves.toBe(false);
        await expect(store.replayDeadLetter('not-an-id')).resolves.toBe(false);
      });
    });

    describe('seen keys', () => {
      test('markSeen is true the first time, false while remembered, true again after expiry', async () => {
        await expect(store.markSeen('jti-1', T0 + 1_000)).resolves.toBe(true);
        await expect(store.markSeen('jti-1', T0 + 1_000)).resolves.toBe(false);
        await expect(store.markSeen('jti-2', T0 + 1_000)).resolves.toBe(true);
        advance(999);
        await expect(store.markSeen('jti-1', T0 + 5_000)).resolves.toBe(false);
        advance(1);
        await expect(store.markSeen('jti-1', T0 + 5_000)).resolves.toBe(true);
        await expect(store.markSeen('jti-1', T0 + 5_000)).resolves.toBe(false);
      });
    });

    describe('tokens', () => {
      test('a token is stored, read back and replaced', async () => {
        await expect(store.getToken('wechat-access-token')).resolves.toBeUndefined();
        await store.putToken('wechat-access-token', { value: 'first', expiresAt: T0 + 7_200_000 });
        await expect(store.getToken('wechat-access-token')).resolves.toEqual({ value: 'first', expiresAt: T0 + 7_200_000 });
        await store.putToken('wechat-access-token', { value: 'second', expiresAt: T0 + 9_000_000 });
        await expect(store.getToken('wechat-access-token')).resolves.toEqual({ value: 'second', expiresAt: T0 + 9_000_000 });
        await expect(store.getToken('other')).resolves.toBeUndefined();
      });
    });

    describe('locks', () => {
      test('a lock is exclusive until it expires', async () => {
        await expect(store.tryLock('token-refresh', 'p1', 10_000)).resolves.toBe(true);
        await expect(store.tryLock('token-refresh', 'p2', 10_000)).resolves.toBe(false);
        await expect(store.tryLock('other-lock', 'p2', 10_000)).resolves.toBe(true);
        advance(9_999);
        await expect(store.tryLock('token-refresh', 'p2', 10_000)).resolves.toBe(false);
        advance(1);
        await expect(store.tryLock('token-refresh', 'p2', 10_000)).resolves.toBe(true);
        await expect(store.tryLock('token-refresh', 'p1', 10_000)).resolves.toBe(false);
      });

      test('only the owner can unlock', async () => {
        await store.tryLock('token-refresh', 'p1', 10_000);
        await store.unlock('token-refresh', 'p2');
        await expect(store.tryLock('token-refresh', 'p2', 10_000)).resolves.toBe(false);
        await store.unlock('token-refresh', 'p1');
        await expect(store.tryLock('token-refresh', 'p2', 10_000)).resolves.toBe(true);
      });

      test('an expired lock taken over by another owner cannot be released by the old owner', async () => {
        await store.tryLock('token-refresh', 'p1', 1_000);
        advance(1_000);
        await expect(store.tryLock('token-refresh', 'p2', 10_000)).resolves.toBe(true);
        await store.unlock('token-refresh', 'p1');
        await expect(store.tryLock('token-refresh', 'p3', 10_000)).resolves.toBe(false);
      });
    });

    describe('stats and ping', () => {
      test('stats count live jobs per kind, the oldest age and the dead letters', async () => {
        await expect(store.stats()).resolves.toEqual({ depth: {}, oldestAgeMs: 0, deadLetters: 0 });
        await store.enqueue([job('a', 1, { kind: 'send' }), job('b', 2, { kind: 'send' })]);
        advance(5_000);
        await store.enqueue([job('c', 3, { kind: 'deliver' }), job('d', 4, { kind: 'deliver' })]);
        advance(2_000);
        const [oldest] = await claimAll(1);
        await store.deadLetter(oldest!.id, 'bad');
        await expect(store.stats()).resolves.toEqual({
          depth: { send: 1, deliver: 2 },
          oldestAgeMs: 7_000,
          deadLetters: 1,
        });
      });

      test('ping resolves while the store can serve', async () => {
        await expect(store.ping()).resolves.toBeUndefined();
      });
    });

    if (options.durable) {
      describe('durability', () => {
        test('jobs, leases, dead letters, dedup keys, tokens and locks survive close and reopen', async () => {
          await store.enqueue([
            job('a', 'a1', { dedupKey: 'm1' }),
            job('a', 'a2', { dedupKey: 'm2' }),
            job('b', 'b1'),
            job('c', 'c1'),
          ]);
          const [a1, b1] = await claimAll(2);
          await store.deadLetter(b1!.id, 'bad');
          await store.putToken('t', { value: 'v', expiresAt: T0 + 1_000 });
          await store.tryLock('l', 'p1', 60_000);
          await store.markSeen('jti', T0 + 60_000);

          if (!fixture.reopen) throw new Error('a durable store fixture must provide reopen()');
          store = await fixture.reopen();

          // a1 is still leased (the lease survives), c1 is free, a2 waits behind a1.
          const [c1, ...others] = await claimAll();
          expect([c1!.payload, others]).toEqual(['c1', []]);
          await store.complete(c1!.id);
          advance(LEASE);
          expect(await claimAll()).toEqual([expect.objectContaining({ id: a1!.id, payload: 'a1', attempts: 1 })]);
          expect((await store.listDeadLetters()).map((dead) => dead.payload)).toEqual(['b1']);
          await expect(store.enqueue([job('a', 'x', { dedupKey: 'm2' })])).resolves.toEqual([{ outcome: 'duplicate' }]);
          await expect(store.getToken('t')).resolves.toEqual({ value: 'v', expiresAt: T0 + 1_000 });
          await expect(store.tryLock('l', 'p2', 1_000)).resolves.toBe(false);
          await expect(store.markSeen('jti', T0 + 60_000)).resolves.toBe(false);
        });
      });
    }
  });
}
