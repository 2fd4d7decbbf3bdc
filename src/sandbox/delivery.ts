/**
 * One attempt of a platform's call to the server it notifies (WeChat's push to the account's server,
 * Vonage's callback to the application's event_url): a POST that waits `timeoutMs` for an answer,
 * recorded as its status and body, or as why no answer came. The retry rules are each platform's own
 * (wechat/push.ts, vonage/callbacks.ts).
 */

export interface DeliveryAttempt {
  /** 1 for the first attempt, then 2, 3… */
  attempt: number;
  /** Epoch ms. */
  at: number;
  status?: number;
  body?: string;
  /** `no answer within 5000 ms`, `connect ECONNREFUSED …`. */
  error?: string;
  durationMs: number;
}

export interface PostOptions {
  url: string;
  headers: Record<string, string>;
  body: string;
  attempt: number;
  timeoutMs: number;
  now: () => number;
  /** Aborts the request in flight (the platform is closing). */
  signal?: AbortSignal | undefined;
}

export async function postOnce(o: PostOptions): Promise<DeliveryAttempt> {
  const at = o.now();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), o.timeoutMs);
  const abort = () => controller.abort();
  o.signal?.addEventListener('abort', abort);
  try {
    const response = await fetch(o.url, { method: 'POST', headers: o.headers, body: o.body, signal: controller.signal });
    const body = await response.text();
    return { attempt: o.attempt, at, status: response.status, body, durationMs: o.now() - at };
  } catch (error) {
    const message = controller.signal.aborted ? `no answer within ${o.timeoutMs} ms` : describeTransportError(error);
    return { attempt: o.attempt, at, error: message, durationMs: o.now() - at };
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', abort);
  }
}

/** fetch's underlying cause (`connect ECONNREFUSED …`) when it has one. */
function describeTransportError(error: unknown): string {
  const cause = (error as { cause?: { message?: unknown } }).cause;
  if (cause && typeof cause.message === 'string') return cause.message;
  return error instanceof Error ? error.message : String(error);
}
