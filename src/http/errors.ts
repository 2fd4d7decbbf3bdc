/**
 * Maps every error that reaches Express to a short answer and one log line.
 * Bad input gets its 4xx and a `warn`; anything else is our fault: `500` and an `error` log.
 * No stack trace or internal detail ever goes back to the caller.
 */
import type { ErrorRequestHandler } from 'express';
import { InvalidInputError } from '../errors';
import type { Logger } from '../logger';

/** body-parser and friends mark their errors with an HTTP status (413 too large, 400 bad encoding, …). */
function clientStatusOf(error: unknown): number | undefined {
  const status = (error as { status?: unknown; statusCode?: unknown } | null)?.status ?? (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' && status >= 400 && status < 500 ? status : undefined;
}

const SHORT_REASON: Record<number, string> = {
  400: 'bad request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not found',
  413: 'payload too large',
  415: 'unsupported media type',
};

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error, req, res, _next) => {
    const status = error instanceof InvalidInputError ? error.status : clientStatusOf(error);
    if (status !== undefined) {
      const reason = error instanceof InvalidInputError ? error.message : SHORT_REASON[status] ?? 'bad request';
      logger.warn({ method: req.method, path: req.path, status, reason, ip: req.ip }, 'request rejected');
      if (!res.headersSent) res.status(status).type('text/plain').send(reason);
      return;
    }
    logger.error({ err: error, method: req.method, path: req.path }, 'request failed');
    if (!res.headersSent) res.status(500).type('text/plain').send('internal error');
  };
}
