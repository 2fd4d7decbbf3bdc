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
 * the poll interval. A job whose outcome cannot be recorded keeps its lease and runs again once the
 * lease expires, so work is never lost, only repeated (handlers are idempotent per job).
 */
import type { Logger } from 'pino';
import { isClassifiedError, type ClassifiedError } from '../errors';
import type { Job, Store } from '../store/store';
import { backoffDelayMs, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff';

export type JobHandler = (job: Job) => Promise<void>;

export type JobOutcome = 'completed' | 'retried' | 'dead-lettered';

export interface JobWorkerOptions {
  store: Store;
  handlers: Record<string, JobHandler>;
  logger: Logger;
  /** Jobs in flight at once. Default 8. */
  concurrency?: number;
  /** How long a claimed job is ours; a crashed process's jobs are taken over after it. Default 60 s. */
  leaseMs?: number;
  /** How often to look for work when idle. Default 250 ms. */
  pollIntervalMs?: number;
  /** A job still failing this long after `createdAt` is dead-lettered. Default 24 h. */
  giveUpAfterMs?: number;
  /** Exponential backoff with full jitter. Default 1 s base, 5 min cap. */
  backoff?: BackoffPolicy;
  now?: () => number;
  random?: () => number;
  /** Called once per handled job after its outcome is stored (a metrics hook); must not throw. */
  onOutcome?: (job: Job, outcome: JobOutcome, error?: Error) => void;
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

export interface DecisionContext {
  now: number;
  giveUpAfterMs: number;
  backoff: BackoffPolicy;
  random: () => number;
}

/** Longest error text kept in the store (last_error, dead-letter reason). */
const MAX_ERROR_TEXT = 2000;

/**
 * The worker's one decision, a pure function: retryable failures (and unexpected errors, which
 * may be transient) come back after a backoff — never sooner than the remote's Retry-After — until
 * the give-up deadline; permanent failures and bad input go to the dead letters at once.
 */
export function decideJobOutcome(job: Job, result: HandlerResult, context: DecisionContext): JobDecision {
  const retryOrGiveUp = (delayMs: number, message: string): JobDecision => {
    const runAt = context.now + Math.max(0, delayMs);
    if (runAt > job.createdAt + context.giveUpAfterMs) {
      return { action: 'dead-letter', reason: clip(`gave up after ${formatDuration(context.giveUpAfterMs)}: ${message}`) };
    }
    return { action: 'retry', runAt, error: clip(message) };
  };
  // The run that just failed was start number attempts + 1, so this is retry number attempts + 1.
  const backoff = () => backoffDelayMs(job.attempts + 1, context.backoff, context.random);

  switch (result.kind) {
    case 'success':
      return { action: 'complete' };
    case 'retryable':
      return retryOrGiveUp(Math.max(result.retryAfterMs ?? 0, backoff()), result.message);
    case 'permanent':
      return {
        action: 'dead-letter',
        reason: clip(`permanent failure${result.code === undefined ? '' : ` (code ${result.code})`}: ${result.message}`),
      };
    case 'invalid-input':
      return { action: 'dead-letter', reason: clip(`invalid input (${result.status}): ${result.message}`) };
    case 'unexpected':
      return retryOrGiveUp(backoff(), `unexpected error: ${result.error.message}`);
    case 'no-handler':
      return { action: 'dead-letter', reason: clip(result.error.message) };
  }
}

export class JobWorker {
  private readonly store: Store;
  private readonly handlers: Record<string, JobHandler>;
  private readonly logger: Logger;
  private readonly concurrency: number;
  private readonly leaseMs: number;
  private readonly pollIntervalMs: number;
  private readonly giveUpAfterMs: number;
  private readonly backoff: BackoffPolicy;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly onOutcome: JobWorkerOptions['onOutcome'];

  private running = false;
  private loopDone: Promise<void> | undefined;
  private readonly inFlight = new Map<string, Promise<void>>();
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
    this.leaseMs = options.leaseMs ?? 60_000;
    this.pollIntervalMs = options.pollIntervalMs ?? 250;
    this.giveUpAfterMs = options.giveUpAfterMs ?? 24 * 60 * 60 * 1000;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.onOutcome = options.onOutcome;
  }

  /** Starts the loop (idempotent). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.woken = true;
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
    await Promise.all(this.inFlight.values());
  }

  private async loop(): Promise<void> {
    while (this.running) {
      // Yield to I/O between claims, so a deep queue of quick jobs never starves the HTTP server.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (!this.running) break;
      this.woken = false;
      const free = this.concurrency - this.inFlight.size;
      if (free > 0) {
        let jobs: Job[];
        try {
          jobs = await this.store.claim({ limit: free, leaseMs: this.leaseMs });
        } catch (error) {
          this.logger.error(
            { error: describeError(error), retryInMs: this.pollIntervalMs },
            'claiming jobs failed; retrying after the poll interval',
          );
          await this.sleep(this.pollIntervalMs, false);
          continue;
        }
        for (const job of jobs) this.startJob(job);
        // A full batch: more may be waiting, and capacity is full anyway (we wake when a job ends).
        if (jobs.length === free) continue;
      }
      if (!this.woken) await this.sleep(this.pollIntervalMs, true);
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

  private startJob(job: Job): void {
    if (this.inFlight.has(job.id)) {
      // Its lease ran out while the handler is still running here, and we claimed it again (which
      // renewed the lease). The run in progress records the outcome; never run it twice at once.
      this.logger.warn({ jobId: job.id, kind: job.kind, attempts: job.attempts }, 'job lease expired while running');
      return;
    }
    const run = this.runJob(job).finally(() => {
      this.inFlight.delete(job.id);
      this.notify();
    });
    this.inFlight.set(job.id, run);
  }

  private async runJob(job: Job): Promise<void> {
    const startedAt = this.now();
    const result = await this.invoke(job);
    const decision = decideJobOutcome(job, result, {
      now: this.now(),
      giveUpAfterMs: this.giveUpAfterMs,
      backoff: this.backoff,
      random: this.random,
    });
    const error = result.kind === 'success' ? undefined : result instanceof Error ? result : result.error;
    const context = { jobId: job.id, kind: job.kind, attempts: job.attempts + 1, durationMs: this.now() - startedAt };

    let outcome: JobOutcome;
    try {
      switch (decision.action) {
        case 'complete':
          await this.store.complete(job.id);
          outcome = 'completed';
          break;
        case 'retry':
          await this.store.retry(job.id, decision.runAt, decision.error);
          outcome = 'retried';
          break;
        case 'dead-letter':
          await this.store.deadLetter(job.id, decision.reason);
          outcome = 'dead-lettered';
          break;
      }
    } catch (storeError) {
      this.logger.error(
        { ...context, error: describeError(storeError) },
        'could not record the job outcome; the job runs again when its lease expires',
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

function clip(text: string): string {
  return text.length <= MAX_ERROR_TEXT ? text : `${text.slice(0, MAX_ERROR_TEXT - 1)}…`;
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
