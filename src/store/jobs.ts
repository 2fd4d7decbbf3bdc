/**
 * What both stores do with jobs outside their SQL: check and serialise a job when `enqueue` is
 * called (before it joins a group commit, so a bad job rejects only its own call, never the batch),
 * read job ids, and bound what a claim or a listing may take.
 */
import { isStorableText } from './storable-text';
import type { ClaimOptions, NewJob } from './store';

export interface PreparedJob {
  kind: string;
  orderKey: string;
  payloadJson: string;
  dedupKey: string | undefined;
  runAt: number | undefined;
}

export interface PrepareJobOptions {
  /**
   * Refuse keys with text the database cannot hold (NUL characters, unpaired surrogates: PostgreSQL
   * text would fail the whole batch on them, or change them silently). In the payload JSON escapes them.
   */
  refuseUnstorableText?: boolean;
}

export function prepareJob(job: NewJob, options: PrepareJobOptions = {}): PreparedJob {
  if (options.refuseUnstorableText) {
    for (const [name, value] of [['kind', job.kind], ['orderKey', job.orderKey], ['dedupKey', job.dedupKey]] as const) {
      if (typeof value === 'string' && !isStorableText(value)) {
        throw new TypeError(`job ${name} must not contain NUL characters or unpaired surrogates`);
      }
    }
  }
  if (typeof job.kind !== 'string' || job.kind === '') throw new TypeError('job kind must be a non-empty string');
  if (typeof job.orderKey !== 'string') throw new TypeError('job orderKey must be a string');
  if (job.dedupKey !== undefined && typeof job.dedupKey !== 'string') {
    throw new TypeError('job dedupKey must be a string when set');
  }
  if (job.runAt !== undefined && !Number.isFinite(job.runAt)) throw new TypeError('job runAt must be a finite number');
  const payloadJson: string | undefined = JSON.stringify(job.payload);
  if (payloadJson === undefined) throw new TypeError('job payload must be JSON-serialisable');
  return {
    kind: job.kind,
    orderKey: job.orderKey,
    payloadJson,
    dedupKey: job.dedupKey,
    runAt: job.runAt === undefined ? undefined : Math.floor(job.runAt),
  };
}

/**
 * Job ids are the decimal rendering of the row's sequence number (a 64-bit integer in both
 * databases); anything else names no job, and is answered without asking the database.
 */
export function parseJobId(id: string): string | undefined {
  return /^[1-9][0-9]{0,17}$/.test(id) ? id : undefined;
}

/** Orders job ids as the numbers they render (claims return their jobs oldest first). */
export function compareJobIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** How many jobs a claim may take: 0 when it can take none (no positive limit, or no kinds at all). */
export function claimLimit(options: ClaimOptions): number {
  const limit = Math.floor(options.limit);
  return limit > 0 && options.kinds?.length !== 0 ? limit : 0;
}

/** How many dead letters a listing returns: 100 unless asked. */
export function deadLetterListLimit(options: { limit?: number }): number {
  return Math.max(0, Math.floor(options.limit ?? 100));
}
