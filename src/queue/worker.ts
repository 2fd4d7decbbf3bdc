/**
 * The job worker: claims runnable jobs from the store, runs each with the handler of its kind,
 * and records the outcome (complete, retry at a later time, or dead letter).
 *
 * Ordering comes from the store (at most one job per order key is ever leased), so the worker may
 * run `concurrency` jobs at once without reordering one user's messages.
 *
 * The loop claims whenever it has free capacity and something may be runnable: at start, on
 * `notify()` (the HTTP layer calls it right after an enqueue), when a job finishes (its key's next
 * job may now be the head), and otherwise every `pollIntervalMs` (for retries coming due and for
 * other processes' enqueues). A failing store never stops the loop: it logs and tries again after
 * the poll interval (doubling, up to 2 s, while the failures last).
 *
 * Leases: a claimed job is leased for `leaseMs` (default 15 s) and the lease is renewed every
 * `leaseMs / 3` while its handler runs (one `renewLeases` call for all jobs in flight). So a slow
 * handler (a 10-second remote timeout, a token fetch before it) keeps its job, while the jobs of a
 * process that died (kill -9, power cut, a lost host) are taken over by another instance within
 * `leaseMs`. Outcomes are recorded with the claim's lease token: if the lease was lost anyway (the
 * database was unreachable for longer than the lease) and another claim took the job, the late
 * outcome is a no-op and is logged.
 *
 * An outcome that cannot be recorded (the database is briefly unreachable) is retried, with the
 * same backoff, until it is recorded, the lease turns out to be lost, or the worker stops. Only then
 * does the job run again after its lease, so work is never lost, only (rarely) repeated: a job that
 * runs again after an unrecorded run is marked `interrupted` and logged, so that handlers and
 * operators can tell (see `Job.interrupted`).
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from 'pino';
import { scrubSecrets, type SecretScrubber } from '../logger';
import { isClassifiedError, type ClassifiedError } from '../errors';
import type { Job, JobLease, Store } from '../store/store';
import { clipChars } from '../values';
import { DEFAULT_RETRY_POLICY, giveUpAt, retryDelayMs, type RetryPolicy } from './retry-policy';

export type JobHandler = (job: Job) => Promise<void>;

export type JobOutcome = 'completed' | 'retried' | 'dead-lettered';

/** `giveUpAfterMs` and `backoff`: the retry policy (retry-policy.ts), DEFAULT_RETRY_POLICY's where not given. */
export interface JobWorkerOptions extends Partial<RetryPolicy> {
  store: Store;
  handlers: Record<string, JobHandler>;
  logger: Logger;
  /** Jobs in flight at once. Default 8. */
  concurrency?: number;
  /**
   * Jobs in flight at once right now, at most `concurrency` (read before every claim): lets the
   * process give the acknowledgements of waiting webhook requests the core first. Default: `concurrency`.
   */
  concurrencyNow?: () => number;
  /**
   * How long a claim lasts without renewal; a crashed process's jobs are taken over after it.
   * Renewed every `leaseMs / 3` while the handler runs. Default 15 s.
   */
  leaseMs?: number;
  /** How often to look for work when idle. Default 250 ms. */
  pollIntervalMs?: number;
  now?: () => number;
  random?: () => number;
  /** Called once per handled job after its outcome is stored (a metrics hook); must not throw. */
  onOutcome?: (job: Job, outcome: JobOutcome, error?: Error) => void;
  /** Scrubs error text (a remote may echo a token) before it is stored as a job's last error or dead-letter reason. Default: scrubSecrets. */
  scrub?: SecretScrubber;
}

/** What becomes of a job after its handler ran. */
export type JobDecision =
  | { action: 'complete' }
  | { action: 'retry'; runAt: number; error: string }
  | { action: 'dead-letter'; reason: string };

/** How a handler run ended: the classes the decision switches on. */
export type HandlerResult =
  | { kind: 'success' }
  | ClassifiedError
  | { kind: 'unexpected'; error: Error }
  | { kind: 'no-handler'; error: Error };

export interface DecisionContext extends RetryPolicy {
  now: number;
  random: () => number;
}

/** Longest error text kept in the store (last_error, dead-letter reason). */
const MAX_ERROR_TEXT = 2000;

/** While jobs run, the longest wait for a quarter of the slots to free up before claiming anyway. */
const CLAIM_BATCH_WAIT_MS = 10;

/** The longest pause between two attempts at a failing store call (claim, recording an outcome). */
const MAX_STORE_RETRY_MS = 2000;

/**
 * The worker's one decision, a pure function: retryable failures (and unexpected errors, which
 * may be transient) come back after a backoff — never sooner than the remote's Retry-After — until
 * the give-up deadline; permanent failures and bad input go to the dead letters at once.
 */
export function decideJobOutcome(job: Job, result: HandlerResult, context: DecisionContext): JobDecision {
  const retryOrGiveUp = (delayMs: number, message: string): JobDecision => {
    const runAt = context.now + Math.max(0, delayMs);
    if (runAt > giveUpAt(job.createdAt, context)) {
      return { action: 'dead-letter', reason: clipChars(`gave up after ${formatDuration(context.giveUpAfterMs)}: ${message}`, MAX_ERROR_TEXT) };
    }
    return { action: 'retry', runAt, error: clipChars(message, MAX_ERROR_TEXT) };
  };
  // The run that just failed was start number attempts + 1, so this is retry number attempts + 1.
  const delay = (retryAfterMs?: number) => retryDelayMs(job.attempts + 1, retryAfterMs, context.backoff, context.random);

  switch (result.kind) {
    case 'success':
      return { action: 'complete' };
    case 'retryable':
      return retryOrGiveUp(delay(result.retryAfterMs), result.message);
    case 'permanent':
      return {
        action: 'dead-letter',
        reason: clipChars(`permanent failure${result.code === undefined ? '' : ` (code ${result.code})`}: ${result.message}`, MAX_ERROR_TEXT),
      };
    case 'invalid-input':
      return { action: 'dead-letter', reason: clipChars(`invalid input (${result.status}): ${result.message}`, MAX_ERROR_TEXT) };
    case 'unexpected':
      return retryOrGiveUp(delay(), `unexpected error: ${result.error.message}`);
    case 'no-handler':
      return { action: 'dead-letter', reason: clipChars(result.error.message, MAX_ERROR_TEXT) };
  }
}

export class JobWorker {
  private readonly store: Store;
  private readonly handlers: Record<string, JobHandler>;
  private readonly logger: Logger;
  private readonly concurrency: number;
  private readonly concurrencyNow: () => number;
  /** Free slots worth a claim while other jobs run (see `loop`). */
  private readonly claimBatch: number;
  private lastClaimAt = Number.NEGATIVE_INFINITY;
  private readonly leaseMs: number;
  private readonly pollIntervalMs: number;
  private readonly retryPolicy: RetryPolicy;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly onOutcome: JobWorkerOptions['onOutcome'];
  private readonly scrub: SecretScrubber;

  private running = false;
  private loopDone: Promise<void> | undefined;
  private readonly inFlight = new Map<string, Promise<void>>();
  /** The newest claim of each job in flight: outcomes and renewals use its token. */
  private readonly leases = new Map<string, JobLease>();
  private heartbeat: NodeJS.Timeout | undefined;
  private renewing = false;
  /** Consecutive failed claims: the pause before the next one doubles with them. */
  private claimFailures = 0;
  /** Set by notify() and by finishing jobs: look for work again before sleeping. */
  private woken = false;
  /** Ends the current sleep, if any. */
  private interruptSleep: (() => void) | undefined;
  /** Whether the current sleep ends on notify() (not while backing off from a store error). */
  private sleepEndsOnNotify = false;

  constructor(options: JobWorkerOptions) {
    this.store = options.store;
    this.handlers = options.handlers;
    this.logger = options.logger;
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? 8));
    this.claimBatch = Math.max(1, Math.floor(this.concurrency / 4));
    const { concurrencyNow } = options;
    this.concurrencyNow = concurrencyNow ? () => Math.max(1, Math.min(this.concurrency, Math.floor(concurrencyNow()))) : () => this.concurrency;
    this.leaseMs = options.leaseMs ?? 15_000;
    this.pollIntervalMs = options.pollIntervalMs ?? 250;
    this.retryPolicy = {
      giveUpAfterMs: options.giveUpAfterMs ?? DEFAULT_RETRY_POLICY.giveUpAfterMs,
      backoff: options.backoff ?? DEFAULT_RETRY_POLICY.backoff,
    };
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.onOutcome = options.onOutcome;
    this.scrub = options.scrub ?? ((text) => scrubSecrets(text));
  }

  /** Starts the loop (idempotent). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.woken = true;
    this.heartbeat = setInterval(() => void this.renewLeases(), Math.max(1, Math.floor(this.leaseMs / 3)));
    this.heartbeat.unref();
    this.loopDone = this.loop().catch((error: unknown) => {
      // Unreachable by design (the loop catches everything); never let it crash the process.
      this.logger.error({ error: describeError(error) }, 'job worker loop ended unexpectedly');
      this.running = false;
    });
  }

  /** Something may be runnable now (e.g. just enqueued): look at once instead of at the next poll. */
  notify(): void {
    this.woken = true;
    if (this.sleepEndsOnNotify) this.interruptSleep?.();
  }

  /** Stops claiming, waits for the jobs in flight to finish and record their outcome. */
  async stop(): Promise<void> {
    this.running = false;
    this.interruptSleep?.();
    await this.loopDone;
    // Leases are still renewed while the last handlers finish.
    await Promise.all(this.inFlight.values());
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      // Yield to I/O between claims, so a deep queue of quick jobs never starves the HTTP server.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (!this.running) break;
      this.woken = false;
      const limit = this.concurrencyNow();
      const free = limit - this.inFlight.size;
      // While jobs run, claim once a quarter of the slots are free (a claim costs about as much for
      // ten jobs as for one, and under load the slots free up one at a time), or after a short
      // while anyway, so that a few slow jobs holding most slots never hold up the rest.
      const claimNow = this.inFlight.size === 0 || free >= Math.min(this.claimBatch, limit) || performance.now() - this.lastClaimAt >= CLAIM_BATCH_WAIT_MS;
      if (free > 0 && claimNow) {
        this.lastClaimAt = performance.now();
        let jobs: Job[];
        try {
          jobs = await this.store.claim({ limit: free, leaseMs: this.leaseMs });
          this.claimFailures = 0;
        } catch (error) {
          this.claimFailures += 1;
          const retryInMs = this.storeRetryDelay(this.claimFailures);
          this.logger.error({ error: describeError(error), retryInMs }, 'claiming jobs failed; retrying after the poll interval');
          await this.sleep(retryInMs, false);
          continue;
        }
        for (const job of jobs) this.startJob(job);
        // A full batch: more may be waiting, and capacity is full anyway (we wake when a job ends).
        if (jobs.length === free) continue;
      }
      // Slots free but left for a bigger claim: look again once the wait for it is over.
      const waitForBatch = free > 0 && !claimNow ? Math.max(1, CLAIM_BATCH_WAIT_MS - (performance.now() - this.lastClaimAt)) : this.pollIntervalMs;
      if (!this.woken) await this.sleep(Math.min(this.pollIntervalMs, waitForBatch), true);
    }
  }

  private sleep(ms: number, endsOnNotify: boolean): Promise<void> {
    return new Promise((resolve) => {
      const end = () => {
        clearTimeout(timer);
        this.interruptSleep = undefined;
        this.sleepEndsOnNotify = false;
        resolve();
      };
      const timer = setTimeout(end, ms);
      this.interruptSleep = end;
      this.sleepEndsOnNotify = endsOnNotify;
      if (!this.running) end();
    });
  }

  /** pollInterval doubling with each consecutive failure, at most MAX_STORE_RETRY_MS (or the poll interval if larger). */
  private storeRetryDelay(failures: number): number {
    const cap = Math.max(this.pollIntervalMs, MAX_STORE_RETRY_MS);
    return Math.min(cap, this.pollIntervalMs * 2 ** Math.min(20, Math.max(0, failures - 1)));
  }

  private startJob(job: Job): void {
    if (this.inFlight.has(job.id)) {
      // Its lease ran out while the handler is still running here (renewals failed), and we claimed
      // it again. The run in progress records the outcome, under this newest claim; never run it
      // twice at once.
      this.leases.set(job.id, { id: job.id, leaseToken: job.leaseToken });
      this.logger.warn({ jobId: job.id, kind: job.kind, attempts: job.attempts }, 'job lease expired while running');
      return;
    }
    if (job.interrupted) {
      this.logger.warn(
        { jobId: job.id, kind: job.kind, attempts: job.attempts },
        'job runs again after a run that recorded no outcome (its process stopped or lost the lease); its effect may have happened already',
      );
    }
    this.leases.set(job.id, { id: job.id, leaseToken: job.leaseToken });
    const run = this.runJob(job).finally(() => {
      this.inFlight.delete(job.id);
      this.leases.delete(job.id);
      this.notify();
    });
    this.inFlight.set(job.id, run);
  }

  /** The heartbeat: extends the leases of every job in flight, in one store call. */
  private async renewLeases(): Promise<void> {
    if (this.renewing || this.leases.size === 0) return;
    this.renewing = true;
    const leases = [...this.leases.values()];
    try {
      const renewed = new Set(await this.store.renewLeases(leases, this.leaseMs));
      for (const lease of leases) {
        // Only report a loss the run still cares about (not one that finished meanwhile).
        if (!renewed.has(lease.id) && this.leases.get(lease.id) === lease) {
          // Said once: the run goes on (it cannot be interrupted), but its outcome will be a no-op.
          this.leases.delete(lease.id);
          this.logger.warn({ jobId: lease.id }, "job lease lost while running: another claim holds it; this run's outcome will not be recorded");
        }
      }
    } catch (error) {
      this.logger.warn({ error: describeError(error), jobs: leases.length }, 'renewing job leases failed; will try again');
    } finally {
      this.renewing = false;
    }
  }

  private async runJob(job: Job): Promise<void> {
    const startedAt = this.now();
    const result = await this.invoke(job);
    const decision = decideJobOutcome(job, result, { ...this.retryPolicy, now: this.now(), random: this.random });
    const error = result.kind === 'success' ? undefined : result instanceof Error ? result : result.error;
    const context = { jobId: job.id, kind: job.kind, attempts: job.attempts + 1, durationMs: this.now() - startedAt };

    const outcome: JobOutcome =
      decision.action === 'complete' ? 'completed' : decision.action === 'retry' ? 'retried' : 'dead-lettered';
    const recorded = await this.recordOutcome(job, decision, context);
    if (recorded === 'not-recorded') return;
    if (recorded === 'lease-lost') {
      this.logger.warn(
        { ...context, outcome },
        'job outcome not recorded: its lease was taken over by another claim, which decides the job now',
      );
      return;
    }

    switch (outcome) {
      case 'completed':
        this.logger.info({ ...context, outcome }, 'job completed');
        break;
      case 'retried':
        if (decision.action !== 'retry') break;
        if (result.kind === 'unexpected') {
          this.logger.error(
            { ...context, outcome, runAt: decision.runAt, error: describeError(result.error, true) },
            'job failed with an unexpected error; will retry',
          );
        } else {
          this.logger.warn({ ...context, outcome, runAt: decision.runAt, error: describeError(error) }, 'job failed; will retry');
        }
        break;
      case 'dead-lettered':
        if (decision.action !== 'dead-letter') break;
        this.logger.error({ ...context, outcome, reason: decision.reason }, 'job dead-lettered');
        break;
    }

    try {
      this.onOutcome?.(job, outcome, error);
    } catch (hookError) {
      this.logger.warn({ jobId: job.id, error: describeError(hookError) }, 'onOutcome hook threw');
    }
  }

  /**
   * Stores the decision under the job's newest lease, retrying while the store fails (a database
   * blip must not make a finished job run again), until the worker stops.
   */
  private async recordOutcome(
    job: Job,
    decision: JobDecision,
    context: Record<string, unknown>,
  ): Promise<'recorded' | 'lease-lost' | 'not-recorded'> {
    for (let failures = 1; ; failures += 1) {
      const lease = this.leases.get(job.id) ?? job;
      try {
        let held: boolean;
        switch (decision.action) {
          case 'complete':
            held = await this.store.complete(lease);
            break;
          case 'retry':
            held = await this.store.retry(lease, decision.runAt, this.scrub(decision.error));
            break;
          case 'dead-letter':
            held = await this.store.deadLetter(lease, this.scrub(decision.reason));
            break;
        }
        return held ? 'recorded' : 'lease-lost';
      } catch (storeError) {
        if (!this.running) {
          this.logger.error(
            { ...context, error: describeError(storeError) },
            'could not record the job outcome; the job runs again when its lease expires',
          );
          return 'not-recorded';
        }
        const retryInMs = this.storeRetryDelay(failures);
        this.logger.error(
          { ...context, error: describeError(storeError), retryInMs },
          'could not record the job outcome; trying again',
        );
        await delay(retryInMs);
      }
    }
  }

  private async invoke(job: Job): Promise<HandlerResult> {
    const handler = Object.hasOwn(this.handlers, job.kind) ? this.handlers[job.kind] : undefined;
    if (!handler) return { kind: 'no-handler', error: new Error(`no handler for job kind "${job.kind}"`) };
    try {
      await handler(job);
      return { kind: 'success' };
    } catch (error) {
      if (isClassifiedError(error)) return error;
      return { kind: 'unexpected', error: error instanceof Error ? error : new Error(String(error)) };
    }
  }
}

/**
 * What a log line says about an error: its class, message and code — never the whole object,
 * whose `cause` (e.g. an HTTP client error) may carry request URLs, headers or payload text.
 */
function describeError(error: unknown, withStack = false): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) };
  const code = (error as { code?: unknown }).code;
  return {
    name: error.name,
    message: error.message,
    ...(typeof code === 'string' || typeof code === 'number' ? { code } : {}),
    ...(withStack && error.stack ? { stack: error.stack } : {}),
  };
}

/** `24 h`, `30 min`, `45 s`, `250 ms`: the largest whole unit. */
export function formatDuration(ms: number): string {
  const units: Array<[number, string]> = [
    [60 * 60 * 1000, 'h'],
    [60 * 1000, 'min'],
    [1000, 's'],
  ];
  for (const [size, unit] of units) if (ms >= size && ms % size === 0) return `${ms / size} ${unit}`;
  return `${ms} ms`;
}
