/**
 * The behaviour every `Store` implementation must have, as a reusable jest suite: the SQLite store
 * and the PostgreSQL store run the same suite.
 *
 * `makeStore` gives a fresh, empty store whose clock the suite controls with `setNow`. A store that
 * lives in a file (or a server) passes `{ durable: true }` and a `reopen` in its fixture, and the
 * suite then also checks that what was stored survives closing and reopening. A fixture with
 * `openPeer` (a second store on the same database, as another process would have) also runs the
 * tests of several processes sharing the database: claims, dedup keys, leases and locks.
 */
import type { Job, NewJob, Store } from '../../src/store/store';
import { sleep } from './wait';

/**
 * Claims and completes every job in `store` until none is left; asserts that payloads `{ call }`
 * 0..total-1 were each there once and that each order key (`call % keys`) ran in enqueue order.
 * The group-commit tests of both stores end with it.
 */
export async function expectDrainedOnceInKeyOrder(store: Store, total: number, keys: number): Promise<void> {
  const seen: number[] = [];
  for (;;) {
    const claimed = await store.claim({ limit: 50, leaseMs: 60_000 });
    if (claimed.length === 0) break;
    for (const each of claimed) {
      seen.push((each.payload as { call: number }).call);
      await store.complete(each);
    }
  }
  expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, call) => call));
  for (let key = 0; key < keys; key += 1) {
    const ofKey = seen.filter((call) => call % keys === key);
    expect(ofKey).toEqual([...ofKey].sort((a, b) => a - b));
  }
}

export interface StoreFixture {
  store: Store;
  setNow: (ms: number) => void;
  cleanup: () => Promise<void>;
  /** Closes the store and opens it again on the same data (durable stores only); returns the new store. */
  reopen?: () => Promise<Store>;
  /** Another store on the same database, sharing the suite's clock; `cleanup` closes it. */
  openPeer?: () => Promise<Store>;
}

export interface StoreContractOptions {
  /** Register the durability tests (needs `reopen` in the fixture). */
  durable?: boolean;
  /** Register the tests of several processes on one database (needs `openPeer` in the fixture). */
  shared?: boolean;
}

const T0 = 1_700_000_000_000;
const LEASE = 30_000;

export function describeStoreContract(
  name: string,
  makeStore: () => Promise<StoreFixture>,
  options: StoreContractOptions = {},
): void {
  describe(`Store contract: ${name}`, () => {
    // Undefined while beforeEach has not made one (e.g. the database is down): afterEach then has
    // nothing to clean up, and the test reports makeStore's error alone.
    let fixture: StoreFixture | undefined;
    let store: Store;
    let now: number;
    const setNow = (ms: number) => {
      now = ms;
      fixture?.setNow(ms);
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
      const made = fixture;
      fixture = undefined;
      await made?.cleanup();
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
          leaseToken: expect.any(String),
          interrupted: false,
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
        await expect(store.complete(claimed!)).resolves.toBe(true);
        await expect(store.complete(claimed!)).resolves.toBe(false);
        await expect(store.complete({ id: 'no-such-job', leaseToken: claimed!.leaseToken })).resolves.toBe(false);
        await expect(store.complete({ id: '999999', leaseToken: claimed!.leaseToken })).resolves.toBe(false);
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
        await store.complete(first!);
        await store.deadLetter(second!, 'broken');
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

        await store.complete(first[0]!);
        expect(payloads(await claimAll())).toEqual(['a2']);
        await store.complete(first[1]!);
        await store.complete(first[2]!);
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
        await store.retry(a1!, T0 + 10_000, 'HTTP 503');
        await store.complete(b1!);

        advance(9_999);
        expect(await claimAll()).toEqual([]);
        advance(1);
        const [again, ...rest] = await claimAll();
        expect(rest).toEqual([]);
        expect(again).toMatchObject({ id: a1!.id, payload: 'a1', attempts: 1, lastError: 'HTTP 503' });

        await store.complete(again!);
        expect(payloads(await claimAll())).toEqual(['a2']);
      });

      test('every claim of a job comes with a new lease token', async () => {
        await store.enqueue([job('a', 'a1'), job('b', 'b1')]);
        const first = await claimAll();
        advance(LEASE);
        const second = await claimAll();
        expect(second.map((claimed) => claimed.id)).toEqual(first.map((claimed) => claimed.id));
        second.forEach((claimed, index) => {
          expect(claimed.leaseToken).toEqual(expect.any(String));
          expect(claimed.leaseToken).not.toBe(first[index]!.leaseToken);
        });
      });

      test('after a takeover the old claim can no longer complete, retry or dead-letter the job', async () => {
        await store.enqueue([job('a', 'a1'), job('a', 'a2')]);
        const [stale] = await claimAll();
        advance(LEASE);
        const [current] = await claimAll();
        expect(current!.id).toBe(stale!.id);

        await expect(store.complete(stale!)).resolves.toBe(false);
        await expect(store.retry(stale!, now + 1_000, 'late')).resolves.toBe(false);
        await expect(store.deadLetter(stale!, 'late')).resolves.toBe(false);
        await expect(store.renewLeases([stale!], LEASE)).resolves.toEqual([]);
        // Nothing changed: the new holder's lease still stands, a2 still waits behind it.
        expect(await claimAll()).toEqual([]);
        expect(await store.listDeadLetters()).toEqual([]);

        await expect(store.complete(current!)).resolves.toBe(true);
        expect(payloads(await claimAll())).toEqual(['a2']);
      });

      test('renewLeases extends the leases it still holds, from now', async () => {
        await store.enqueue([job('a', 'a1'), job('b', 'b1'), job('c', 'c1')]);
        const [a1, b1, c1] = await claimAll();
        await store.complete(c1!);
        advance(LEASE - 1);
        await expect(store.renewLeases([a1!, b1!, c1!, { id: 'nope', leaseToken: 'x' }], LEASE)).resolves.toEqual([a1!.id, b1!.id]);
        advance(LEASE - 1);
        expect(await claimAll()).toEqual([]);
        advance(1);
        expect(payloads(await claimAll())).toEqual(['a1', 'b1']);
        await expect(store.renewLeases([], LEASE)).resolves.toEqual([]);
      });

      test('a job given back by retry is not renewed', async () => {
        await store.enqueue([job('a', 'a1')]);
        const [a1] = await claimAll();
        await store.retry(a1!, now + 5_000, 'HTTP 503');
        await expect(store.renewLeases([a1!], LEASE)).resolves.toEqual([]);
        advance(5_000);
        expect(payloads(await claimAll())).toEqual(['a1']);
      });

      test('a run that recorded no outcome marks every later run of the job interrupted', async () => {
        await store.enqueue([job('a', 'a1'), job('b', 'b1')]);
        const [a1, b1] = await claimAll();
        expect([a1!.interrupted, b1!.interrupted]).toEqual([false, false]);
        // b1's run records its outcome (a retry): its next run is not interrupted.
        await store.retry(b1!, now, 'HTTP 503');
        // a1's run never does (its process died): after the lease its next run is.
        advance(LEASE);
        const again = await claimAll();
        expect(again.map((claimed) => [claimed.payload, claimed.attempts, claimed.interrupted])).toEqual([
          ['a1', 1, true],
          ['b1', 1, false],
        ]);
        // Sticky: the earlier unknown outcome stays unknown, even after a recorded retry.
        await store.retry(again[0]!, now, 'HTTP 503');
        const [third] = await claimAll(1);
        expect(third).toMatchObject({ payload: 'a1', attempts: 2, interrupted: true, lastError: 'HTTP 503' });
      });

      test('attempts count every claim', async () => {
        await store.enqueue([job('a', 'a1')]);
        for (let expected = 0; expected < 3; expected += 1) {
          const [claimed] = await claimAll();
          expect(claimed!.attempts).toBe(expected);
          await store.retry(claimed!, now, `failure ${expected}`);
        }
      });
    });

    describe('dead letters', () => {
      test('dead-lettering a job unblocks its key and keeps it visible', async () => {
        await store.enqueue([job('a', 'a1'), job('a', 'a2')]);
        const [a1] = await claimAll();
        advance(1_000);
        await store.deadLetter(a1!, 'permanent failure (code 45015): out of window');

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
        await store.retry(a1!, T0 + 60_000, 'HTTP 500');
        await expect(store.deadLetter(a1!, 'given up')).resolves.toBe(true);
        expect(payloads(await claimAll())).toEqual(['a2']);
      });

      test('dead letters are listed newest first, with a limit', async () => {
        await store.enqueue([job('a', 1), job('b', 2), job('c', 3)]);
        const claimed = await claimAll();
        for (const each of claimed) {
          advance(10);
          await store.deadLetter(each, `reason ${String(each.payload)}`);
        }
        expect((await store.listDeadLetters()).map((dead) => dead.payload)).toEqual([3, 2, 1]);
        expect((await store.listDeadLetters({ limit: 2 })).map((dead) => dead.payload)).toEqual([3, 2]);
      });

      test('replay puts a dead letter back as a fresh job and removes it from the dead letters', async () => {
        await store.enqueue([job('a', { text: 'hi' }, { kind: 'send' })]);
        const [original] = await claimAll();
        await store.retry(original!, now, 'HTTP 500');
        const [again] = await claimAll();
        await store.deadLetter(again!, 'gave up after 24 h: HTTP 500');

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
          leaseToken: expect.any(String),
          interrupted: false,
        });
        expect(replayed!.id).not.toBe(original!.id);
        await expect(store.replayDeadLetter(dead!.id)).resolves.toBe(false);
      });

      test('a dead letter is read by id, and purged for good without touching its dedup key', async () => {
        await store.enqueue([job('a', 'a1', { dedupKey: 'msg-a1' }), job('b', 'b1')]);
        const [a1, b1] = await claimAll();
        await store.deadLetter(a1!, 'bad');
        await store.deadLetter(b1!, 'worse');
        await expect(store.getDeadLetter(a1!.id)).resolves.toEqual(
          expect.objectContaining({ id: a1!.id, payload: 'a1', orderKey: 'a', reason: 'bad', attempts: 1 }),
        );
        await expect(store.getDeadLetter('424242')).resolves.toBeUndefined();
        await expect(store.getDeadLetter('not-an-id')).resolves.toBeUndefined();

        await expect(store.purgeDeadLetter(a1!.id)).resolves.toBe(true);
        await expect(store.purgeDeadLetter(a1!.id)).resolves.toBe(false);
        await expect(store.purgeDeadLetter('not-an-id')).resolves.toBe(false);
        expect((await store.listDeadLetters()).map((dead) => dead.payload)).toEqual(['b1']);
        await expect(store.replayDeadLetter(a1!.id)).resolves.toBe(false);
        await expect(store.enqueue([job('a', 'retried', { dedupKey: 'msg-a1' })])).resolves.toEqual([{ outcome: 'duplicate' }]);
        expect(await claimAll()).toEqual([]);
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

      test('seen keys given to enqueue are recorded with its jobs, also when the jobs are duplicates', async () => {
        const seenKeys = [
          { key: 'jti-with-job', expiresAt: T0 + 1_000 },
          { key: 'jti-with-job:hash', expiresAt: T0 + 1_000 },
        ];
        await expect(store.enqueue([job('k', { n: 1 }, { dedupKey: 'rtc:c:1' })], { seenKeys })).resolves.toEqual([{ outcome: 'stored' }]);
        await expect(store.markSeen('jti-with-job', T0 + 1_000)).resolves.toBe(false);
        await expect(store.markSeen('jti-with-job:hash', T0 + 1_000)).resolves.toBe(false);
        // A redelivery: the job is a duplicate, the keys are kept with the later expiry.
        await expect(
          store.enqueue([job('k', { n: 1 }, { dedupKey: 'rtc:c:1' })], { seenKeys: [{ key: 'jti-with-job', expiresAt: T0 + 3_000 }] }),
        ).resolves.toEqual([{ outcome: 'duplicate' }]);
        advance(2_000);
        await expect(store.markSeen('jti-with-job', T0 + 5_000)).resolves.toBe(false);
        await expect(store.markSeen('jti-with-job:hash', T0 + 5_000)).resolves.toBe(true);
      });

      test('concurrent enqueues carrying the same seen key are all stored', async () => {
        const results = await Promise.all(
          [1, 2, 3].map((n) => store.enqueue([job(`k${n}`, { n })], { seenKeys: [{ key: 'jti-shared', expiresAt: T0 + 1_000 + n }] })),
        );
        expect(results.flat()).toEqual([{ outcome: 'stored' }, { outcome: 'stored' }, { outcome: 'stored' }]);
        await expect(store.markSeen('jti-shared', T0 + 1_000)).resolves.toBe(false);
      });

      test('when the enqueue fails, its seen keys are not recorded either', async () => {
        // A job the store refuses (its payload cannot be serialised) fails the whole call.
        const unstorable = job('k', { n: 1n });
        await expect(store.enqueue([unstorable], { seenKeys: [{ key: 'jti-failed', expiresAt: T0 + 1_000 }] })).rejects.toThrow();
        await expect(store.markSeen('jti-failed', T0 + 1_000)).resolves.toBe(true);
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

    describe('conversation mappings', () => {
      test('progress is recorded step by step and read back by openid and by conversation', async () => {
        await expect(store.getConversationMapping('o-user')).resolves.toBeUndefined();
        await expect(store.findConversationMapping('CON-1')).resolves.toBeUndefined();

        await expect(store.saveConversationMapping({ openid: 'o-user', conversationId: 'CON-1' })).resolves.toEqual({
          openid: 'o-user',
          conversationId: 'CON-1',
          userId: undefined,
          memberId: undefined,
          createdAt: T0,
          updatedAt: T0,
        });
        advance(1_000);
        await store.saveConversationMapping({ openid: 'o-user', conversationId: 'CON-1', userId: 'USR-1' });
        advance(1_000);
        const done = await store.saveConversationMapping({ openid: 'o-user', conversationId: 'CON-1', userId: 'USR-1', memberId: 'MEM-1' });
        const expected = { openid: 'o-user', conversationId: 'CON-1', userId: 'USR-1', memberId: 'MEM-1', createdAt: T0, updatedAt: T0 + 2_000 };
        expect(done).toEqual(expected);
        await expect(store.getConversationMapping('o-user')).resolves.toEqual(expected);
        await expect(store.findConversationMapping('CON-1')).resolves.toEqual(expected);
        await expect(store.getConversationMapping('o-other')).resolves.toBeUndefined();
      });

      test('first writer wins: a stored conversation, user or member is never replaced', async () => {
        await store.saveConversationMapping({ openid: 'o-user', conversationId: 'CON-1', userId: 'USR-1' });
        // Another writer that created a second conversation learns the first one from the answer.
        const other = await store.saveConversationMapping({ openid: 'o-user', conversationId: 'CON-2', userId: 'USR-2', memberId: 'MEM-2' });
        expect(other).toMatchObject({ conversationId: 'CON-1', userId: 'USR-1', memberId: undefined });
        await expect(store.findConversationMapping('CON-2')).resolves.toBeUndefined();
        const joined = await store.saveConversationMapping({ openid: 'o-user', conversationId: 'CON-1', userId: 'USR-9', memberId: 'MEM-1' });
        expect(joined).toMatchObject({ conversationId: 'CON-1', userId: 'USR-1', memberId: 'MEM-1' });
        const again = await store.saveConversationMapping({ openid: 'o-user', conversationId: 'CON-1', memberId: 'MEM-9' });
        expect(again).toMatchObject({ userId: 'USR-1', memberId: 'MEM-1' });
      });

      test('one conversation belongs to one openid; empty ids are refused', async () => {
        await store.saveConversationMapping({ openid: 'o-a', conversationId: 'CON-1' });
        await expect(store.saveConversationMapping({ openid: 'o-b', conversationId: 'CON-1' })).rejects.toThrow();
        await expect(store.getConversationMapping('o-b')).resolves.toBeUndefined();
        await expect(store.saveConversationMapping({ openid: '', conversationId: 'CON-2' })).rejects.toThrow(TypeError);
        await expect(store.saveConversationMapping({ openid: 'o-c', conversationId: '' })).rejects.toThrow(TypeError);
        await expect(store.saveConversationMapping({ openid: 'o-c', conversationId: 'CON-3', userId: '' })).rejects.toThrow(TypeError);
      });
    });

    describe('uploaded media', () => {
      test('a record is returned while it is valid, replaced on put, and gone once expired', async () => {
        await expect(store.getUploadedMedia('url:abc')).resolves.toBeUndefined();
        await store.putUploadedMedia({ key: 'url:abc', mediaId: 'media-1', type: 'image', expiresAt: T0 + 10_000 });
        await expect(store.getUploadedMedia('url:abc')).resolves.toEqual({ key: 'url:abc', mediaId: 'media-1', type: 'image', expiresAt: T0 + 10_000 });
        await store.putUploadedMedia({ key: 'url:abc', mediaId: 'media-2', type: 'image', expiresAt: T0 + 20_000 });
        await expect(store.getUploadedMedia('url:abc')).resolves.toMatchObject({ mediaId: 'media-2' });
        advance(19_999);
        await expect(store.getUploadedMedia('url:abc')).resolves.toMatchObject({ mediaId: 'media-2' });
        advance(1);
        await expect(store.getUploadedMedia('url:abc')).resolves.toBeUndefined();
        await expect(store.getUploadedMedia('url:other')).resolves.toBeUndefined();
      });
    });

    describe('send allowances', () => {
      const allowance = (kind: string, openedAt: number, lastsMs: number, remaining: number) => ({
        scope: 'default:o-1',
        kind,
        openedAt,
        closesAt: openedAt + lastsMs,
        remaining,
      });

      test('a grant is stored once per opening: an equal or older one changes nothing, a newer one replaces it', async () => {
        await expect(store.listSendAllowances('default:o-1')).resolves.toEqual([]);
        await expect(store.grantSendAllowance(allowance('message', T0, 10_000, 5))).resolves.toBe(true);
        await expect(store.takeSendAllowance('default:o-1', now)).resolves.toBe(true);
        await expect(store.grantSendAllowance(allowance('message', T0, 10_000, 5))).resolves.toBe(false);
        await expect(store.grantSendAllowance(allowance('message', T0 - 1, 10_000, 5))).resolves.toBe(false);
        await expect(store.listSendAllowances('default:o-1')).resolves.toEqual([allowance('message', T0, 10_000, 4)]);
        await expect(store.grantSendAllowance(allowance('message', T0 + 1, 10_000, 5))).resolves.toBe(true);
        await expect(store.listSendAllowances('default:o-1')).resolves.toEqual([allowance('message', T0 + 1, 10_000, 5)]);
        await expect(store.listSendAllowances('default:o-2')).resolves.toEqual([]);
      });

      test('a take uses the open allowance closing first, never a closed or used-up one', async () => {
        await store.grantSendAllowance(allowance('message', T0, 100_000, 1));
        await store.grantSendAllowance(allowance('interaction', T0, 60_000, 2));
        await expect(store.takeSendAllowance('default:o-1', now)).resolves.toBe(true);
        await expect(store.listSendAllowances('default:o-1')).resolves.toEqual([
          allowance('interaction', T0, 60_000, 1),
          allowance('message', T0, 100_000, 1),
        ]);
        advance(60_000);
        await expect(store.takeSendAllowance('default:o-1', now)).resolves.toBe(true);
        await expect(store.takeSendAllowance('default:o-1', now)).resolves.toBe(false);
        await expect(store.listSendAllowances('default:o-1')).resolves.toEqual([
          allowance('interaction', T0, 60_000, 1),
          allowance('message', T0, 100_000, 0),
        ]);
      });

      test('revoke leaves every allowance of the scope with nothing remaining', async () => {
        await store.grantSendAllowance(allowance('message', T0, 100_000, 5));
        await store.grantSendAllowance({ ...allowance('message', T0, 100_000, 5), scope: 'default:o-2' });
        await store.revokeSendAllowances('default:o-1');
        await expect(store.takeSendAllowance('default:o-1', now)).resolves.toBe(false);
        await expect(store.takeSendAllowance('default:o-2', now)).resolves.toBe(true);
      });
    });

    describe('remembered values', () => {
      test('a value is recalled until it expires, and replaced when remembered again', async () => {
        await expect(store.recallValue('template:1')).resolves.toBeUndefined();
        await store.rememberValue('template:1', { eventId: 'EV-1', nested: [1, 'two'] }, T0 + 10_000);
        await expect(store.recallValue('template:1')).resolves.toEqual({ eventId: 'EV-1', nested: [1, 'two'] });
        await store.rememberValue('template:1', 'second', T0 + 20_000);
        advance(19_999);
        await expect(store.recallValue('template:1')).resolves.toBe('second');
        advance(1);
        await expect(store.recallValue('template:1')).resolves.toBeUndefined();
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
        await store.deadLetter(oldest!, 'bad');
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

    if (options.shared) {
      describe('several processes on one database', () => {
        let peer: Store;
        beforeEach(async () => {
          if (!fixture?.openPeer) throw new Error('a shared store fixture must provide openPeer()');
          peer = await fixture.openPeer();
        });

        test('concurrent claims from two processes never hand out the same job, nor two jobs of one key', async () => {
          const keys = 20;
          const perKey = 10;
          for (let n = 0; n < perKey; n += 1) {
            await store.enqueue(Array.from({ length: keys }, (_, key) => job(`user-${key}`, { key, n })));
          }
          const handled: Array<{ key: number; n: number }> = [];
          const drain = async (each: Store) => {
            for (let idle = 0; idle < 3; ) {
              const claimed = await each.claim({ limit: 7, leaseMs: LEASE });
              if (claimed.length === 0) {
                idle += 1;
                await sleep(5);
                continue;
              }
              idle = 0;
              for (const one of claimed) {
                handled.push(one.payload as { key: number; n: number });
                // Another job of this key must not be out while this one is.
                const out = handled.filter((h) => h.key === (one.payload as { key: number }).key).length;
                expect(out).toBe((one.payload as { n: number }).n + 1);
                await expect(each.complete(one)).resolves.toBe(true);
              }
            }
          };
          await Promise.all([drain(store), drain(peer), drain(store), drain(peer)]);
          expect(handled).toHaveLength(keys * perKey);
          for (let key = 0; key < keys; key += 1) {
            expect(handled.filter((h) => h.key === key).map((h) => h.n)).toEqual(Array.from({ length: perKey }, (_, n) => n));
          }
        });

        test('takes through two processes at once never use more sends than the allowance has', async () => {
          await store.grantSendAllowance({ scope: 'default:o-1', kind: 'message', openedAt: T0, closesAt: T0 + 100_000, remaining: 5 });
          const taken = await Promise.all(Array.from({ length: 12 }, (_, n) => (n % 2 === 0 ? store : peer).takeSendAllowance('default:o-1', now)));
          expect(taken.filter(Boolean)).toHaveLength(5);
          await expect(peer.listSendAllowances('default:o-1')).resolves.toMatchObject([{ remaining: 0 }]);
        });

        test('one message enqueued through two processes at once is stored once', async () => {
          const results = await Promise.all(
            Array.from({ length: 10 }, (_, n) =>
              (n % 2 === 0 ? store : peer).enqueue([job('a', n, { dedupKey: 'same-msg' }), job('b', n, { dedupKey: `other-${n}` })]),
            ),
          );
          expect(results.filter(([first]) => first!.outcome === 'stored')).toHaveLength(1);
          expect(results.every(([, second]) => second!.outcome === 'stored')).toBe(true);
          expect((await peer.stats()).depth).toEqual({ deliver: 11 });
        });

        test('jobs of one key enqueued through two processes still run one at a time, in order', async () => {
          await Promise.all([store.enqueue([job('a', 1)]), peer.enqueue([job('a', 2)])]);
          await store.enqueue([job('a', 3)]);
          const seen: unknown[] = [];
          for (let round = 0; round < 3; round += 1) {
            const claimed = [...(await store.claim({ limit: 10, leaseMs: LEASE })), ...(await peer.claim({ limit: 10, leaseMs: LEASE }))];
            expect(claimed).toHaveLength(1);
            seen.push(claimed[0]!.payload);
            await peer.complete(claimed[0]!);
          }
          expect(seen.slice(2)).toEqual([3]);
          expect([...seen].sort()).toEqual([1, 2, 3]);
        });

        test("a process's jobs are taken over by another when its lease expires, and its late outcome is ignored", async () => {
          await store.enqueue([job('a', 'a1'), job('a', 'a2')]);
          const [held] = await store.claim({ limit: 1, leaseMs: LEASE });
          expect(await peer.claim({ limit: 10, leaseMs: LEASE })).toEqual([]);
          advance(LEASE);
          const [taken] = await peer.claim({ limit: 10, leaseMs: LEASE });
          expect(taken).toMatchObject({ id: held!.id, attempts: 1, interrupted: true });
          await expect(store.complete(held!)).resolves.toBe(false);
          await expect(peer.complete(taken!)).resolves.toBe(true);
          expect((await store.claim({ limit: 10, leaseMs: LEASE })).map((claimed) => claimed.payload)).toEqual(['a2']);
        });

        test('two processes recording the first conversation of one user at once keep one', async () => {
          const results = await Promise.all(
            Array.from({ length: 10 }, (_, n) =>
              (n % 2 === 0 ? store : peer).saveConversationMapping({ openid: 'o-race', conversationId: `CON-${n}` }),
            ),
          );
          const kept = new Set(results.map((row) => row.conversationId));
          expect(kept.size).toBe(1);
          await expect(peer.getConversationMapping('o-race')).resolves.toMatchObject({ conversationId: [...kept][0] });
          await store.putUploadedMedia({ key: 'k', mediaId: 'm', type: 'image', expiresAt: T0 + 1_000 });
          await expect(peer.getUploadedMedia('k')).resolves.toMatchObject({ mediaId: 'm' });
        });

        test('a seen key and a lock are shared', async () => {
          await expect(store.markSeen('jti', T0 + 1_000)).resolves.toBe(true);
          await expect(peer.markSeen('jti', T0 + 1_000)).resolves.toBe(false);
          const [mine, theirs] = await Promise.all([store.tryLock('refresh', 'p1', 10_000), peer.tryLock('refresh', 'p2', 10_000)]);
          expect([mine, theirs].filter(Boolean)).toHaveLength(1);
          await peer.putToken('t', { value: 'v', expiresAt: T0 + 5 });
          await expect(store.getToken('t')).resolves.toEqual({ value: 'v', expiresAt: T0 + 5 });
        });
      });
    }

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
          await store.deadLetter(b1!, 'bad');
          await store.putToken('t', { value: 'v', expiresAt: T0 + 1_000 });
          await store.tryLock('l', 'p1', 60_000);
          await store.markSeen('jti', T0 + 60_000);
          await store.saveConversationMapping({ openid: 'o-user', conversationId: 'CON-1', userId: 'USR-1' });
          await store.putUploadedMedia({ key: 'k', mediaId: 'm', type: 'voice', expiresAt: T0 + 60_000 });

          if (!fixture?.reopen) throw new Error('a durable store fixture must provide reopen()');
          store = await fixture.reopen();

          // a1 is still leased (the lease survives), c1 is free, a2 waits behind a1.
          const [c1, ...others] = await claimAll();
          expect([c1!.payload, others]).toEqual(['c1', []]);
          await store.complete(c1!);
          advance(LEASE);
          expect(await claimAll()).toEqual([expect.objectContaining({ id: a1!.id, payload: 'a1', attempts: 1 })]);
          expect((await store.listDeadLetters()).map((dead) => dead.payload)).toEqual(['b1']);
          await expect(store.enqueue([job('a', 'x', { dedupKey: 'm2' })])).resolves.toEqual([{ outcome: 'duplicate' }]);
          await expect(store.getToken('t')).resolves.toEqual({ value: 'v', expiresAt: T0 + 1_000 });
          await expect(store.tryLock('l', 'p2', 1_000)).resolves.toBe(false);
          await expect(store.markSeen('jti', T0 + 60_000)).resolves.toBe(false);
          await expect(store.getConversationMapping('o-user')).resolves.toMatchObject({ conversationId: 'CON-1', userId: 'USR-1', memberId: undefined });
          await expect(store.getUploadedMedia('k')).resolves.toMatchObject({ mediaId: 'm', type: 'voice' });
        });
      });
    }
  });
}
