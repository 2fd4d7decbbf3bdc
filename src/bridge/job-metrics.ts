/**
 * What each finished job means for the metrics. The worker reports every outcome; this reads the
 * job's kind and payload to tell directions apart (an inbound message, a status event going back,
 * an outbound send) and to feed the conversation analytics.
 */
import type { JobOutcome } from '../queue/worker';
import type { BridgeMetrics, Direction } from '../metrics';
import type { Job } from '../store/store';
import { WECHAT_MESSAGE_EVENT } from './custom-events';
import { isJobOf, JOB_DELIVER_TO_VONAGE } from './jobs';

function directionOf(job: Job): Direction {
  if (!isJobOf(job, JOB_DELIVER_TO_VONAGE)) return 'outbound';
  return job.payload.event.type === WECHAT_MESSAGE_EVENT ? 'inbound' : 'status';
}

const codeOf = (error: Error | undefined): string => {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && code !== '' ? code : 'unknown';
};

export function observeJobOutcome(metrics: BridgeMetrics, job: Job, outcome: JobOutcome, error?: Error, now = Date.now()): void {
  const direction = directionOf(job);
  // Outbound sends report delivered / failed themselves (a refused send completes its job with a
  // failed status); here only what the worker alone knows about them.
  switch (outcome) {
    case 'completed':
      if (direction === 'outbound') return;
      metrics.delivered(direction, (now - job.createdAt) / 1000);
      if (direction === 'inbound' && isJobOf(job, JOB_DELIVER_TO_VONAGE)) {
        const { conversationId, event } = job.payload;
        // A split message counts once, on its first part.
        const firstPart = event.body.part === undefined || event.body.part === 1;
        // Per-user mode resolves the conversation when the job runs; the payload has only the route.
        if (typeof event.body.from === 'string' && firstPart) metrics.userMessage(event.body.from, conversationId ?? 'per-user');
      }
      return;
    case 'retried':
      metrics.remoteError(direction === 'outbound' ? 'wechat' : 'vonage', codeOf(error));
      return;
    case 'dead-lettered':
      metrics.deadLettered(direction);
      metrics.failed(direction, direction === 'outbound' ? 'wechat' : 'vonage', codeOf(error));
      return;
  }
}
