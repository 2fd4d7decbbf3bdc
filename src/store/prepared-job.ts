/**
 * Both stores check and serialise a job when `enqueue` is called, before it joins a group commit,
 * so a bad job rejects only its own call, never the batch.
 */
import type { NewJob } from './store';

export interface PreparedJob {
  kind: string;
  orderKey: string;
  payloadJson: string;
  dedupKey: string | undefined;
  runAt: number | undefined;
}

export function prepareJob(job: NewJob): PreparedJob {
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
