/**
 * The one rule both webhooks live by: answer `2xx` only once the work is stored durably.
 *
 * `storeThenAcknowledge` enqueues the jobs, waits at most until the request's deadline (counted from its
 * arrival, see ack-budget.ts; WeChat hangs up after 5 s), and answers: the success text when stored (or already stored: a redelivery), `503` when the store
 * failed or was too slow, so that the sender tries again and the dedup key absorbs the copy if the
 * write did land after all. It also reports to the metrics, so both directions are counted alike.
 */
import type { RequestHandler, Response } from 'express';
import type { Logger } from '../logger';
import type { BridgeMetrics, Direction } from '../metrics';
import type { EnqueueOptions, JobQueue, NewJob, SeenKeys } from '../store/store';
import { arrivalOf, deadlineOf, markStoring } from './ack-budget';

export interface DurableAckDeps {
  logger: Logger;
  /** Enqueues a request's jobs; the webhooks' replay guards record their keys in it too. */
  store: Pick<JobQueue, 'enqueue'> & SeenKeys;
  metrics: BridgeMetrics;
  /** Called once new jobs are stored, to wake the workers at once. */
  onJobsStored: () => void;
  /** Arrival to answer, for a request that did not pass `admitWithinBudget` (which sets its own deadline). */
  ackTimeoutMs: number;
  /** `admitWithinBudget`, shared by both webhooks: sets the deadline at arrival and sheds past it. */
  admit: RequestHandler;
}

export async function storeThenAcknowledge(
  deps: DurableAckDeps,
  res: Response,
  work: {
    jobs: NewJob[];
    direction: Direction;
    successText: string;
    context: Record<string, unknown>;
    /** Replay keys stored in the jobs' transaction (a webhook token's `jti`). */
    seenKeys?: EnqueueOptions['seenKeys'];
    /** Writes the answer once the jobs are stored, instead of the success text (passive replies). */
    answer?: () => Promise<void>;
  },
): Promise<void> {
  deps.metrics.received(work.direction);
  // Already answered: shed on arrival or past its deadline while the body was read (ack-budget.ts).
  if (res.headersSent) return;
  const deadline = Math.min(deadlineOf(res), arrivalOf(res) + deps.ackTimeoutMs);
  let timer: NodeJS.Timeout | undefined;
  markStoring(res);
  try {
    const stored = deps.store.enqueue(work.jobs, work.seenKeys ? { seenKeys: work.seenKeys } : undefined);
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(0, deadline - performance.now()));
    });
    const results = await Promise.race([stored, timeout]);
    if (results === 'timeout') {
      stored.then(() => deps.onJobsStored()).catch(() => undefined);
      if (res.headersSent) return;
      deps.logger.error(work.context, 'store too slow, answered 503 so that the sender retries');
      res.status(503).type('text/plain').send('try again');
      return;
    }
    const outcome = results[0]?.outcome === 'duplicate' ? 'duplicate' : 'stored';
    if (outcome === 'stored') deps.onJobsStored();
    // The deadline passed while the store was finishing (the budget's own timer answered 503).
    if (res.headersSent) return;
    // Logged before answering (the logger writes synchronously): once the sender has its answer, the
    // line is out of the process, and a crash right after cannot lose it.
    deps.logger.debug({ ...work.context, outcome }, 'stored and acknowledged');
    if (work.answer) {
      // Stored is what the acknowledgement metric measures; the answer may wait for a reply.
      deps.metrics.acknowledged(work.direction, outcome, (performance.now() - arrivalOf(res)) / 1000);
      clearTimeout(timer);
      await work.answer();
      return;
    }
    res.status(200).type('text/plain').send(work.successText);
    deps.metrics.acknowledged(work.direction, outcome, (performance.now() - arrivalOf(res)) / 1000);
  } catch (error) {
    // Never acknowledge what was not stored.
    deps.logger.error({ ...work.context, err: error }, 'could not store, answered 503 so that the sender retries');
    if (!res.headersSent) res.status(503).type('text/plain').send('try again');
  } finally {
    clearTimeout(timer);
  }
}
