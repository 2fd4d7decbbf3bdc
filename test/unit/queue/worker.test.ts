import pino from 'pino';
import { InvalidInputError, PermanentError, RetryableError } from '../../../src/errors';
import { decideJobOutcome, formatDuration, JobWorker, type JobHandler, type JobOutcome, type JobWorkerOptions } from '../../../src/queue/worker';
import { SqliteStore } from '../../../src/store/sqlite/store';
import type { Job, NewJob, Store } from '../../../src/store/store';
import { sleep } from '../../support/wait';

const T0 = 1_700_000_000_000;
const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

function manualClock(start = T0) {
  let current = start;
  return { now: () => current, set: (ms: number) => (current = ms), advance: (ms: number) => (current += ms) };
}

/** A pino logger writing parsed lines into an array. */
function captureLogs() {
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => (raw.push(line), lines.push(JSON.parse(line) as Record<string, unknown>)) });
  return { logger, lines, text: () => raw.join('') };
}

async function waitFor(condition: () => boolean | Promise<boolean>, what = 'condition', timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** Lets the worker loop turn a few times (real I/O turns, no fixed sleep on the happy path). */
async function settle(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

const job = (orderKey: string, payload: unknown, extra: Partial<NewJob> = {}): NewJob => ({
  kind: 'deliver',
  orderKey,
  payload,
  ...extra,
});

/**
 * The real store, with the next N calls of some methods failing as a briefly unavailable database
 * would (fault injection only: every other call goes to the real store).
 */
function withFailures(store: Store, failures: Partial<Record<keyof Store, number>>): Store {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const name = property as keyof Store;
        const remaining = failures[name] ?? 0;
        if (remaining > 0) {
          failures[name] = remaining - 1;
          return Promise.reject(new Error('database is locked'));
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

describe('JobWorker', () => {
  let store: SqliteStore;
  let clock: ReturnType<typeof manualClock>;
  let logs: ReturnType<typeof captureLogs>;
  let outcomes: Array<{ id: string; outcome: JobOutcome; error?: Error }>;
  const workers: JobWorker[] = [];

  beforeEach(() => {
    clock = manualClock();
    store = SqliteStore.open(':memory:', { now: clock.now });
    logs = captureLogs();
    outcomes = [];
  });

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((worker) => worker.stop()));
    await store.close();
  });

  function startWorker(handlers: Record<string, JobHandler>, options: Partial<JobWorkerOptions> = {}): JobWorker {
    const worker = new JobWorker({
      store,
      handlers,
      logger: logs.logger,
      now: clock.now,
      random: () => 0.5,
      pollIntervalMs: 10,
      onOutcome: (done, outcome, error) => outcomes.push({ id: done.id, outcome, ...(error ? { error } : {}) }),
      ...options,
    });
    workers.push(worker);
    worker.start();
    return worker;
  }

  const outcomesOf = () => outcomes.map((each) => each.outcome);

  test('a successful job is completed, logged without its payload', async () => {
    const handled: Job[] = [];
    await store.enqueue([job('user-a', { text: 'my private message' })]);
    startWorker({ deliver: async (claimed) => void handled.push(claimed) });

    await waitFor(() => outcomes.length === 1, 'the outcome');
    expect(outcomesOf()).toEqual(['completed']);
    expect(handled).toEqual([expect.objectContaining({ kind: 'deliver', orderKey: 'user-a', attempts: 0 })]);
    expect((await store.stats()).depth).toEqual({});

    expect(logs.lines).toContainEqual(
      expect.objectContaining({ jobId: handled[0]!.id, kind: 'deliver', attempts: 1, outcome: 'completed' }),
    );
    expect(logs.text()).not.toContain('my private message');
  });

  test("a 429's Retry-After is honoured: the job does not run again before it", async () => {
    const calls: number[] = [];
    const handlers = {
      deliver: async () => {
        calls.push(clock.now());
        if (calls.length === 1) throw new RetryableError('HTTP 429', { retryAfterMs: 30_000 });
      },
    };
    await store.enqueue([job('user-a', 'hello'), job('user-a', 'second')]);
    const worker = startWorker(handlers);
    await waitFor(() => outcomes.length === 1, 'the first outcome');
    expect(outcomes[0]).toMatchObject({ outcome: 'retried', error: expect.any(RetryableError) });

    // Just before the Retry-After: nothing runs, and the job blocks the later job of its key.
    clock.advance(29_999);
    worker.notify();
    await settle();
    await sleep(30);
    expect(calls).toEqual([T0]);

    clock.advance(1);
    worker.notify();
    await waitFor(() => outcomes.length === 3, 'both jobs');
    expect(outcomesOf()).toEqual(['retried', 'completed', 'completed']);
    expect(calls).toEqual([T0, T0 + 30_000, T0 + 30_000]);
    expect(logs.lines).toContainEqual(expect.objectContaining({ outcome: 'retried', runAt: T0 + 30_000, level: 40 }));
  });

  test('a permanent failure is dead-lettered at once with its reason and code', async () => {
    let calls = 0;
    await store.enqueue([job('user-a', 'hello', { kind: 'send' }), job('user-a', 'next', { kind: 'send' })]);
    startWorker({
      send: async (claimed) => {
        calls += 1;
        if (claimed.payload === 'hello') throw new PermanentError('response out of the 48 h window', { code: '45015' });
      },
    });

    await waitFor(() => outcomes.length === 2, 'both outcomes');
    expect(outcomesOf()).toEqual(['dead-lettered', 'completed']);
    expect(calls).toBe(2);
    expect(await store.listDeadLetters()).toEqual([
      expect.objectContaining({
        kind: 'send',
        payload: 'hello',
        attempts: 1,
        reason: 'permanent failure (code 45015): response out of the 48 h window',
      }),
    ]);
  });

  test('invalid input and a kind without a handler are dead-lettered at once', async () => {
    await store.enqueue([job('a', 1), job('b', 2, { kind: 'mystery' })]);
    startWorker({
      deliver: async () => {
        throw new InvalidInputError(400, 'the event has no conversation id');
      },
    });
    await waitFor(() => outcomes.length === 2, 'both outcomes');
    const reasons = (await store.listDeadLetters()).map((dead) => dead.reason).sort();
    expect(reasons).toEqual(['invalid input (400): the event has no conversation id', 'no handler for job kind "mystery"']);
  });

  test('a job still failing 24 h after it was created is dead-lettered with the last error', async () => {
    await store.enqueue([job('user-a', 'hello')]);
    let calls = 0;
    const handlers = {
      deliver: async () => {
        calls += 1;
        throw new RetryableError(`HTTP 503 (call ${calls})`);
      },
    };
    // The first failure is retried; the one after the 24 hours is the last.
    const worker = startWorker(handlers, { backoff: { baseMs: 1_000, maxMs: 1_000 } });
    await waitFor(() => outcomes.length === 1, 'the first outcome');
    expect(outcomesOf()).toEqual(['retried']);

    clock.set(T0 + DAY + 1);
    worker.notify();
    await waitFor(() => outcomes.length === 2, 'the second outcome');
    expect(outcomesOf()).toEqual(['retried', 'dead-lettered']);
    expect(await store.listDeadLetters()).toEqual([
      expect.objectContaining({ payload: 'hello', attempts: 2, reason: 'gave up after 24 h: HTTP 503 (call 2)' }),
    ]);
    expect((await store.stats()).depth).toEqual({});
  });

  test('an unexpected error is logged at error level and retried with backoff', async () => {
    let calls = 0;
    await store.enqueue([job('user-a', 'hello')]);
    startWorker(
      {
        deliver: async () => {
          calls += 1;
          if (calls === 1) throw new TypeError("Cannot read properties of undefined (reading 'id')");
        },
      },
      { random: () => 0 },
    );
    await waitFor(() => outcomes.length === 2, 'both outcomes');
    expect(outcomesOf()).toEqual(['retried', 'completed']);
    expect(logs.lines).toContainEqual(
      expect.objectContaining({
        level: 50,
        outcome: 'retried',
        error: expect.objectContaining({ name: 'TypeError', stack: expect.any(String) }),
      }),
    );
  });

  test('per-key order holds under concurrency, keys run in parallel, a retry blocks only its key', async () => {
    const realClockStore = SqliteStore.open(':memory:');
    const order: Record<string, number[]> = {};
    const running = new Set<string>();
    let maxRunning = 0;
    let perKeyViolation = false;
    let failedOnce = false;
    let seed = 7;
    const random = () => {
      seed = (seed * 16_807) % 2_147_483_647;
      return seed / 2_147_483_647;
    };
    const keys = ['alice', 'bob', 'carol', 'dave'];
    const perKey = 8;
    for (let n = 0; n < perKey; n += 1) {
      await realClockStore.enqueue(keys.map((key) => job(key, { key, n })));
    }

    const worker = new JobWorker({
      store: realClockStore,
      logger: logs.logger,
      concurrency: 3,
      pollIntervalMs: 5,
      backoff: { baseMs: 2, maxMs: 4 },
      handlers: {
        deliver: async (claimed) => {
          const { key, n } = claimed.payload as { key: string; n: number };
          if (running.has(key)) perKeyViolation = true;
          running.add(key);
          maxRunning = Math.max(maxRunning, running.size);
          await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 3)));
          running.delete(key);
          if (key === 'bob' && n === 2 && !failedOnce) {
            failedOnce = true;
            throw new RetryableError('HTTP 502');
          }
          (order[key] ??= []).push(n);
        },
      },
    });
    worker.start();
    try {
      await waitFor(async () => Object.keys((await realClockStore.stats()).depth).length === 0, 'the queue to drain');
    } finally {
      await worker.stop();
      await realClockStore.close();
    }
    const expected = Array.from({ length: perKey }, (_, n) => n);
    expect(order).toEqual({ alice: expected, bob: expected, carol: expected, dave: expected });
    expect(failedOnce).toBe(true);
    expect(perKeyViolation).toBe(false);
    expect(maxRunning).toBeGreaterThan(1);
    expect(maxRunning).toBeLessThanOrEqual(3);
  });

  test('notify() wakes an idle worker at once instead of at the next poll', async () => {
    const handled: string[] = [];
    const worker = startWorker({ deliver: async (claimed) => void handled.push(String(claimed.payload)) }, {
      pollIntervalMs: 600_000,
    });
    // Let the worker find the queue empty and go to sleep for its (ten-minute) poll interval.
    await settle();
    await sleep(20);

    await store.enqueue([job('user-a', 'wake up')]);
    worker.notify();
    await waitFor(() => handled.length === 1, 'the job to run after notify()');
    expect(handled).toEqual(['wake up']);
  });

  test('claims wait for a quarter of the slots while jobs run, but a slot left free by slow jobs is claimed soon, not at the next poll', async () => {
    const claims: number[] = [];
    const counting = new Proxy(store, {
      get(target, property, receiver) {
        const value: unknown = Reflect.get(target, property, receiver);
        if (typeof value !== 'function') return value;
        if (property !== 'claim') return (value as (...args: unknown[]) => unknown).bind(target);
        return async (...args: Parameters<Store['claim']>) => {
          const jobs = await target.claim(...args);
          if (jobs.length > 0) claims.push(jobs.length);
          return jobs;
        };
      },
    });
    const held = deferred();
    const started: string[] = [];
    const worker = startWorker(
      {
        deliver: async (claimed) => {
          started.push(String(claimed.payload));
          if (String(claimed.payload).startsWith('slow')) await held.promise;
        },
      },
      { store: counting, concurrency: 8, pollIntervalMs: 600_000 },
    );
    // Seven slow jobs take seven of the eight slots: one free slot is less than a quarter (2).
    await store.enqueue(Array.from({ length: 7 }, (_, index) => job(`slow-${index}`, `slow ${index}`)));
    worker.notify();
    await waitFor(() => started.length === 7, 'the slow jobs to start');
    await store.enqueue([job('quick', 'quick')]);
    worker.notify();
    // Claimed once the short wait for a bigger batch is over, not at the (ten-minute) poll.
    await waitFor(() => started.includes('quick'), 'the quick job to start in the one free slot');
    held.resolve();
    await waitFor(() => outcomes.length === 8, 'every job to finish');
    expect(claims).toEqual([7, 1]);
  });

  test('concurrencyNow() bounds the jobs in flight at each claim (the process yields to waiting acknowledgements)', async () => {
    let limit = 2;
    let running = 0;
    let most = 0;
    const release = deferred();
    startWorker(
      {
        deliver: async () => {
          running += 1;
          most = Math.max(most, running);
          await release.promise;
          running -= 1;
        },
      },
      { concurrency: 8, concurrencyNow: () => limit },
    );
    await store.enqueue(Array.from({ length: 8 }, (_, index) => job(`user-${index}`, index)));
    await waitFor(() => running === 2, 'two jobs to run');
    await sleep(30); // several claim waits and polls: still two
    expect(most).toBe(2);
    limit = 8;
    await waitFor(() => running === 8, 'all eight to run once the limit is lifted');
    release.resolve();
    await waitFor(() => outcomes.length === 8, 'every job to finish');
  });

  test('stop() stops claiming and waits for the jobs in flight', async () => {
    const release = deferred();
    const started: string[] = [];
    const finished: string[] = [];
    await store.enqueue([job('a', 'a1'), job('b', 'b1')]);
    const worker = startWorker({
      deliver: async (claimed) => {
        started.push(String(claimed.payload));
        await release.promise;
        finished.push(String(claimed.payload));
      },
    });
    await waitFor(() => started.length === 2, 'both jobs to start');

    let stopped = false;
    const stopping = worker.stop().then(() => (stopped = true));
    await settle();
    expect(stopped).toBe(false);

    await store.enqueue([job('c', 'c1')]);
    worker.notify();
    release.resolve();
    await stopping;

    expect(finished.sort()).toEqual(['a1', 'b1']);
    expect(outcomesOf()).toEqual(['completed', 'completed']);
    // Nothing was claimed after stop(): c1 is still waiting, unleased.
    await settle();
    expect(started.sort()).toEqual(['a1', 'b1']);
    expect((await store.claim({ limit: 10, leaseMs: 1_000 })).map((each) => each.payload)).toEqual(['c1']);
  });

  test('store errors in the loop are logged and retried; the worker carries on', async () => {
    const flaky = withFailures(store, { claim: 3 });
    const handled: unknown[] = [];
    await store.enqueue([job('user-a', 'eventually')]);
    const worker = new JobWorker({
      store: flaky,
      handlers: { deliver: async (claimed) => void handled.push(claimed.payload) },
      logger: logs.logger,
      now: clock.now,
      pollIntervalMs: 5,
    });
    workers.push(worker);
    worker.start();

    await waitFor(() => handled.length === 1, 'the job after the store recovers');
    const failures = logs.lines.filter((line) => line.msg === 'claiming jobs failed; retrying after the poll interval');
    expect(failures).toHaveLength(3);
    expect(failures[0]).toMatchObject({ level: 50, error: { message: 'database is locked' } });
  });

  test('an outcome that cannot be recorded at first is retried until it is: the job runs once', async () => {
    const flaky = withFailures(store, { complete: 2 });
    const handled: number[] = [];
    await store.enqueue([job('user-a', 'once')]);
    const worker = new JobWorker({
      store: flaky,
      handlers: { deliver: async () => void handled.push(clock.now()) },
      logger: logs.logger,
      now: clock.now,
      pollIntervalMs: 5,
      onOutcome: (done, outcome) => outcomes.push({ id: done.id, outcome }),
    });
    workers.push(worker);
    worker.start();

    await waitFor(() => outcomes.length === 1, 'the recorded outcome');
    expect(outcomesOf()).toEqual(['completed']);
    expect(handled).toEqual([T0]);
    const failures = logs.lines.filter((line) => line.msg === 'could not record the job outcome; trying again');
    expect(failures.map((line) => line.retryInMs)).toEqual([5, 10]);
    expect((await store.stats()).depth).toEqual({});
  });

  test('an outcome that cannot be recorded when the worker stops is left to the lease: the job runs again after it', async () => {
    const failing = withFailures(store, { complete: 1_000 });
    await store.enqueue([job('user-a', 'again')]);
    const worker = new JobWorker({ store: failing, handlers: { deliver: async () => undefined }, logger: logs.logger, now: clock.now, leaseMs: 60_000, pollIntervalMs: 5 });
    worker.start();
    await waitFor(() => logs.lines.some((line) => line.msg === 'could not record the job outcome; trying again'), 'a failed recording');
    await worker.stop();
    expect(logs.lines).toContainEqual(
      expect.objectContaining({ msg: 'could not record the job outcome; the job runs again when its lease expires' }),
    );
    expect(await store.claim({ limit: 1, leaseMs: 1_000 })).toEqual([]);
    clock.advance(60_000);
    expect(await store.claim({ limit: 1, leaseMs: 1_000 })).toEqual([
      expect.objectContaining({ payload: 'again', attempts: 1, interrupted: true }),
    ]);
  });

  test('an outcome whose lease another claim took over is not recorded; the new holder decides', async () => {
    const release = deferred();
    let started = false;
    await store.enqueue([job('user-a', 'slow')]);
    // A long poll interval: this worker does not look for work again while its one job runs.
    startWorker(
      {
        deliver: async () => {
          started = true;
          await release.promise;
        },
      },
      { leaseMs: 60_000, pollIntervalMs: 600_000 },
    );
    await waitFor(() => started, 'the run');

    // The lease runs out (this worker's renewals did not get through) and another process claims the job.
    clock.advance(60_000);
    const [takenOver] = await store.claim({ limit: 1, leaseMs: 60_000 });
    expect(takenOver).toMatchObject({ payload: 'slow', attempts: 1, interrupted: true });
    release.resolve();

    await waitFor(
      () => logs.lines.some((line) => line.msg === 'job outcome not recorded: its lease was taken over by another claim, which decides the job now'),
      'the discarded outcome',
    );
    expect(outcomes).toEqual([]);
    // The job is still the new holder's.
    await expect(store.complete(takenOver!)).resolves.toBe(true);
  });

  test('while a handler runs its lease is renewed, so no other process can take the job', async () => {
    const realStore = SqliteStore.open(':memory:');
    const release = deferred();
    let runs = 0;
    await realStore.enqueue([job('user-a', 'long')]);
    const worker = new JobWorker({
      store: realStore,
      logger: logs.logger,
      leaseMs: 90,
      pollIntervalMs: 5,
      handlers: {
        deliver: async () => {
          runs += 1;
          await release.promise;
        },
      },
    });
    worker.start();
    try {
      await waitFor(() => runs === 1, 'the run');
      // Another process keeps trying for several lease lengths.
      const deadline = Date.now() + 400;
      while (Date.now() < deadline) {
        expect(await realStore.claim({ limit: 1, leaseMs: 90 })).toEqual([]);
        await sleep(10);
      }
      release.resolve();
      await waitFor(async () => Object.keys((await realStore.stats()).depth).length === 0, 'completion');
      expect(runs).toBe(1);
      expect(logs.lines.filter((line) => Number(line.level) >= 40)).toEqual([]);
    } finally {
      release.resolve();
      await worker.stop();
      await realStore.close();
    }
  });

  test('a job whose earlier run recorded no outcome runs flagged interrupted, with a warning', async () => {
    await store.enqueue([job('user-a', 'maybe done')]);
    // A process claims it and dies.
    await store.claim({ limit: 1, leaseMs: 30_000 });
    clock.advance(30_000);
    const handled: Job[] = [];
    startWorker({ deliver: async (claimed) => void handled.push(claimed) });
    await waitFor(() => outcomes.length === 1, 'the outcome');
    expect(handled).toEqual([expect.objectContaining({ attempts: 1, interrupted: true })]);
    expect(logs.lines).toContainEqual(
      expect.objectContaining({
        level: 40,
        jobId: handled[0]!.id,
        msg: 'job runs again after a run that recorded no outcome (its process stopped or lost the lease); its effect may have happened already',
      }),
    );
  });
});

describe('decideJobOutcome', () => {
  const claimed: Job = {
    id: '1',
    kind: 'deliver',
    orderKey: 'a',
    payload: null,
    attempts: 2,
    createdAt: T0,
    lastError: undefined,
    leaseToken: 'lease-1',
    interrupted: false,
  };
  const context = { now: T0 + HOUR, giveUpAfterMs: DAY, backoff: { baseMs: 1_000, maxMs: 300_000 }, random: () => 0.5 };

  test('success completes', () => {
    expect(decideJobOutcome(claimed, { kind: 'success' }, context)).toEqual({ action: 'complete' });
  });

  test('a retryable error waits for the backoff of its retry number (attempts + 1)', () => {
    // Retry 3: ceiling 4 s, half of it with random 0.5.
    expect(decideJobOutcome(claimed, new RetryableError('HTTP 503'), context)).toEqual({
      action: 'retry',
      runAt: T0 + HOUR + 2_000,
      error: 'HTTP 503',
    });
  });

  test('Retry-After wins over a shorter backoff, and the backoff over a shorter Retry-After', () => {
    const longer = decideJobOutcome(claimed, new RetryableError('HTTP 429', { retryAfterMs: 60_000 }), context);
    expect(longer).toMatchObject({ action: 'retry', runAt: T0 + HOUR + 60_000 });
    const shorter = decideJobOutcome(claimed, new RetryableError('HTTP 429', { retryAfterMs: 10 }), context);
    expect(shorter).toMatchObject({ action: 'retry', runAt: T0 + HOUR + 2_000 });
  });

  test('a retry that would land after the give-up deadline dead-letters instead', () => {
    const late = { ...context, now: T0 + DAY - 1_000 };
    expect(decideJobOutcome(claimed, new RetryableError('HTTP 503'), late)).toEqual({
      action: 'dead-letter',
      reason: 'gave up after 24 h: HTTP 503',
    });
    const justInTime = { ...context, now: T0 + DAY - 2_000 };
    expect(decideJobOutcome(claimed, new RetryableError('HTTP 503'), justInTime)).toMatchObject({ action: 'retry' });
  });

  test('permanent failures and invalid input dead-letter at once, with code or status', () => {
    expect(decideJobOutcome(claimed, new PermanentError('not found', { code: 'conversation:error:not-found' }), context)).toEqual({
      action: 'dead-letter',
      reason: 'permanent failure (code conversation:error:not-found): not found',
    });
    expect(decideJobOutcome(claimed, new PermanentError('refused'), context)).toEqual({
      action: 'dead-letter',
      reason: 'permanent failure: refused',
    });
    expect(decideJobOutcome(claimed, new InvalidInputError(400, 'bad event'), context)).toEqual({
      action: 'dead-letter',
      reason: 'invalid input (400): bad event',
    });
  });

  test('an unexpected error retries with backoff and gives up like a retryable one', () => {
    expect(decideJobOutcome(claimed, { kind: 'unexpected', error: new Error('boom') }, context)).toEqual({
      action: 'retry',
      runAt: T0 + HOUR + 2_000,
      error: 'unexpected error: boom',
    });
    expect(
      decideJobOutcome(claimed, { kind: 'unexpected', error: new Error('boom') }, { ...context, now: T0 + 2 * DAY }),
    ).toEqual({ action: 'dead-letter', reason: 'gave up after 24 h: unexpected error: boom' });
  });

  test('very long error texts are clipped', () => {
    const decision = decideJobOutcome(claimed, new RetryableError('x'.repeat(10_000)), context);
    expect(decision.action === 'retry' && decision.error.length).toBe(2_000);
  });

  test('durations are named in their largest whole unit', () => {
    expect([DAY, HOUR / 2, 45_000, 250, 90_500].map(formatDuration)).toEqual(['24 h', '30 min', '45 s', '250 ms', '90500 ms']);
  });
});
