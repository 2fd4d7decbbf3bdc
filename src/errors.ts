/**
 * One error type per failure class, so that a job worker decides with a single `switch`
 * on `error.kind`, and an HTTP layer maps input errors to short 4xx answers.
 *
 * This module is a leaf: every room may import it, and it imports nothing.
 */

/** The remote may succeed later (5xx, 429, timeout, network error). */
export class RetryableError extends Error {
  readonly kind = 'retryable' as const;
  /** How long the remote asked us to wait (429 Retry-After), if it said. */
  readonly retryAfterMs: number | undefined;
  /**
   * The request certainly had no effect: the remote answered that it did not act on it (429, 503) or
   * it never reached the remote (connection refused). False when it may have (a timeout, a reset, a 500).
   */
  readonly refused: boolean;
  constructor(message: string, options: { retryAfterMs?: number; refused?: boolean; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'RetryableError';
    this.retryAfterMs = options.retryAfterMs;
    this.refused = options.refused ?? false;
  }
}

/** The remote refused for good (a 4xx other than 429, a permanent errcode): retrying cannot help. */
export class PermanentError extends Error {
  readonly kind = 'permanent' as const;
  /** The remote's own code, e.g. WeChat errcode 45015 or Vonage `conversation:error:not-found`. */
  readonly code: string | undefined;
  constructor(message: string, options: { code?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'PermanentError';
    this.code = options.code;
  }
}

/** Input from outside is unacceptable. `status` is the HTTP status to answer with. */
export class InvalidInputError extends Error {
  readonly kind = 'invalid-input' as const;
  readonly status: 400 | 401 | 403 | 404 | 413 | 415;
  constructor(status: InvalidInputError['status'], message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'InvalidInputError';
    this.status = status;
  }
}

export type ClassifiedError = RetryableError | PermanentError | InvalidInputError;

export function isClassifiedError(error: unknown): error is ClassifiedError {
  return error instanceof RetryableError || error instanceof PermanentError || error instanceof InvalidInputError;
}
