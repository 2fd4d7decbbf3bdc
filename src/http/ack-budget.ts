/**
 * The acknowledgement budget: every webhook request is answered within `budgetMs` of its arrival,
 * counted from the moment its headers were read, before the body is read or parsed.
 *
 * WeChat waits 5 s for an answer, then drops the connection and retries (three tries in all), so an
 * answer that comes later is worth nothing: it only holds a connection and memory while the retry
 * is already on its way. Under a burst the time goes to reading and parsing bodies and to the queue
 * in front of the store, not to the store alone, so the deadline has to start at arrival:
 *
 * - too many requests already waiting for their answer (`maxPending`): `503` at once, before the
 *   body is read, so that the requests already admitted are answered in time;
 * - the deadline passes before the message is stored and answered: `503` then, whatever the request
 *   was still doing (a slow body, a slow store). A write that lands afterwards is harmless: the
 *   sender's retry is absorbed by the dedup key.
 *
 * A `503` is never sent after a `success`: both answers check `headersSent`.
 */
import type { RequestHandler, Response } from 'express';
import type { Logger } from '../logger';
import type { BridgeMetrics } from '../metrics';

export interface AckBudgetOptions {
  /** Arrival to answer, at most; below WeChat's 5 s so that the answer still reaches WeChat in time. */
  budgetMs: number;
  /** Requests admitted and not yet answered, at most; more are shed with a `503` on arrival. */
  maxPending: number;
  logger: Logger;
  metrics: BridgeMetrics;
  /** The count of requests admitted and not yet answered, kept here; others read it (the worker yields to it). Default: a private one. */
  load?: AckLoad;
}

/** Webhook requests admitted and not yet answered, now. */
export interface AckLoad {
  pending: number;
}

/** WeChat drops the push after 5 s; one second of margin covers the event loop's lag under a burst. */
export const DEFAULT_ACK_BUDGET_MS = 4000;
/** Enough for a burst of 1,000 requests in flight at once; every pending request may hold up to 64 KiB. */
export const DEFAULT_MAX_PENDING_ACKS = 1024;

/** Shed answers are counted and logged at most once a second: a log line per request would feed the overload. */
const SHED_LOG_INTERVAL_MS = 1000;

/** The moment a request's answer is due (`performance.now()` scale), set by `admitWithinBudget`. */
export const deadlineOf = (res: Response): number =>
  typeof res.locals.ackDeadline === 'number' ? res.locals.ackDeadline : Number.POSITIVE_INFINITY;

/** Marks the request as handed to the store, whose step then keeps the deadline itself. */
export const markStoring = (res: Response): void => {
  res.locals.ackStoring = true;
};
const isStoring = (res: Response): boolean => res.locals.ackStoring === true;

/** When the request arrived, for the deadline and the acknowledgement latency. */
export const arrivalOf = (res: Response): number => (typeof res.locals.arrivedAt === 'number' ? res.locals.arrivedAt : performance.now());

export function admitWithinBudget(options: AckBudgetOptions): RequestHandler {
  const load: AckLoad = options.load ?? { pending: 0 };
  const shedSince = { pending: 0, deadline: 0 };
  let lastShedLog = Number.NEGATIVE_INFINITY;

  const shed = (res: Response, reason: 'pending' | 'deadline'): void => {
    shedSince[reason]++;
    options.metrics.shed(reason);
    const at = performance.now();
    if (at - lastShedLog >= SHED_LOG_INTERVAL_MS) {
      lastShedLog = at;
      options.logger.warn(
        { tooManyPending: shedSince.pending, pastDeadline: shedSince.deadline, pending: load.pending, budgetMs: options.budgetMs },
        'answered 503 so that the sender retries: the acknowledgement could not be made in time',
      );
      shedSince.pending = 0;
      shedSince.deadline = 0;
    }
    // The body may still be arriving: close the connection rather than read what nobody will use.
    res.set('Connection', 'close').status(503).type('text/plain').send('try again');
  };

  return (_req, res, next) => {
    const arrivedAt = arrivalOf(res);
    res.locals.arrivedAt = arrivedAt;
    res.locals.ackDeadline = arrivedAt + options.budgetMs;
    if (load.pending >= options.maxPending) {
      shed(res, 'pending');
      return;
    }
    load.pending++;
    const timer = setTimeout(() => {
      // Once the store has the message, the store step answers at this same deadline (and logs why).
      if (!res.headersSent && !isStoring(res)) shed(res, 'deadline');
    }, Math.max(0, arrivedAt + options.budgetMs - performance.now()));
    let done = false;
    const settle = (): void => {
      if (done) return;
      done = true;
      load.pending--;
      clearTimeout(timer);
    };
    res.once('finish', settle);
    res.once('close', settle);
    next();
  };
}
