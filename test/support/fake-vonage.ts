/**
 * A fake Vonage Conversation API: a real HTTP server on 127.0.0.1 that follows the documented
 * `POST /v1/conversations/{id}/events` (see /work/shared/reference/vonage.md §2–3):
 *
 * - `Authorization: Bearer` RS256 JWT checked against the application's public key, with the claims
 *   Vonage requires (`application_id`, `iat`, `jti`, `exp` at most 24 h after `iat`), else 401
 *   `system:error:invalid-token` (or `system:error:expired-token`);
 * - custom event validation: `type` matches `^custom:[\w\-:]+$` within 100 characters, `body` an object
 *   of at most 4096 bytes serialised, else 400 `http:error:validation-fail` /
 *   `conversation:error:invalid-event`;
 * - 201 with `{id, type, from, body, timestamp, _links}`, ids progressive integers per conversation;
 * - no trailing-slash normalisation (the real gateway stopped doing it in 2026): such paths are 404.
 *
 * Tests steer failures with `script([...])`: one entry is consumed per incoming request, in arrival
 * order, before normal handling. `{status}` answers with that status (a Vonage-shaped error body unless
 * `body` is given); `{delayMs}` waits, then handles normally unless the client has gone away meanwhile
 * (a timed-out request is then *not* recorded); `{reset: true}` destroys the socket.
 */
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import jwt from 'jsonwebtoken';

export interface RecordedEvent {
  conversationId: string;
  /** Progressive per conversation, from 1. */
  id: number;
  type: string;
  body: Record<string, unknown>;
  from: string | undefined;
  /** The verified claims of the bearer token that posted it. */
  jwtClaims: jwt.JwtPayload;
  /** Epoch ms. */
  receivedAt: number;
}

export type ScriptedResponse =
  | { status: number; retryAfter?: string; body?: unknown }
  | { delayMs: number }
  | { reset: true };

export interface FakeVonage {
  /** e.g. `http://127.0.0.1:PORT/v1`. */
  baseUrl: string;
  /** Accepted events, in order. */
  events: RecordedEvent[];
  /** Every POST seen, including refused and scripted ones. */
  readonly requests: number;
  script(responses: ScriptedResponse[]): void;
  /** Resolves with all events recorded so far once there are at least `n`; rejects after `timeoutMs` (default 5 s). */
  waitForEvents(n: number, timeoutMs?: number): Promise<RecordedEvent[]>;
  close(): Promise<void>;
}

export interface FakeVonageOptions {
  publicKeyPem: string;
  applicationId: string;
  /** Clock for token checks and timestamps, epoch ms; default `Date.now`. */
  now?: () => number;
}

const EVENTS_ROUTE = /^\/(v1|beta)\/conversations\/([^/]+)\/events$/;
const CUSTOM_TYPE = /^custom:[\w\-:]+$/;
const MAX_TYPE_CHARS = 100;
const MAX_BODY_BYTES = 4096;
const MAX_REQUEST_BYTES = 1024 * 1024;
const MAX_TOKEN_LIFETIME_SECONDS = 24 * 60 * 60;

const DEFAULT_ERRORS: Record<number, { code: string; title: string; detail: string }> = {
  400: { code: 'http:error:validation-fail', title: 'Bad request.', detail: 'Input validation failure.' },
  401: { code: 'system:error:invalid-token', title: 'Unauthorized.', detail: 'You did not provide a valid token. Please provide a valid token.' },
  403: { code: 'system:error:forbidden', title: 'Forbidden.', detail: 'You do not have permission to access this resource.' },
  404: { code: 'conversation:error:not-found', title: 'Not found.', detail: 'Conversation does not exist, or you do not have access.' },
  409: { code: 'conversation:error:not-allowed', title: 'Conflict.', detail: 'The request conflicts with the state of the conversation.' },
  429: { code: 'http:error:too-many-request', title: 'Too Many Requests.', detail: 'You have exceeded the rate limit.' },
};

interface Waiter {
  n: number;
  resolve: (events: RecordedEvent[]) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export async function startFakeVonage(options: FakeVonageOptions): Promise<FakeVonage> {
  const now = options.now ?? Date.now;
  const publicKey = crypto.createPublicKey(options.publicKeyPem);
  const events: RecordedEvent[] = [];
  const nextIdByConversation = new Map<string, number>();
  const scripted: ScriptedResponse[] = [];
  const waiters = new Set<Waiter>();
  const sleeps = new Set<{ timer: NodeJS.Timeout; wake: () => void }>();
  let requests = 0;
  let closed = false;

  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) sendError(res, 500, 'system:error:internal-error', 'Internal Error.', 'Fake server error.');
      else res.destroy();
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (req.method === 'POST') requests += 1;
    const step = scripted.shift(); // taken on arrival, so entries follow request order
    const raw = await readBody(req);
    if (raw === 'too-large') {
      sendError(res, 413, 'http:error:too-large', 'Payload too large.', 'The request body is too large.');
      return;
    }

    if (step && 'reset' in step) {
      req.socket.destroy();
      return;
    }
    if (step && 'delayMs' in step) {
      await sleep(step.delayMs);
      if (closed || res.destroyed || req.socket.destroyed) return;
    }
    if (step && 'status' in step) {
      sendScripted(res, step);
      return;
    }
    handleNormally(req, res, raw);
  }

  function handleNormally(req: http.IncomingMessage, res: http.ServerResponse, raw: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const route = EVENTS_ROUTE.exec(url.pathname);
    if (!route) {
      sendError(res, 404, 'http:error:not-found', 'Not found.', 'The requested resource does not exist.');
      return;
    }
    if (req.method !== 'POST') {
      sendError(res, 405, 'http:error:method-not-allowed', 'Method not allowed.', `${req.method} is not allowed here.`);
      return;
    }
    const version = route[1] ?? 'v1';
    let conversationId: string;
    try {
      conversationId = decodeURIComponent(route[2] ?? '');
    } catch {
      sendError(res, 404, 'conversation:error:not-found', 'Not found.', 'Conversation does not exist, or you do not have access.');
      return;
    }

    const claims = verifyToken(req.headers.authorization);
    if ('error' in claims) {
      sendError(res, 401, claims.error, 'Unauthorized.', claims.detail);
      return;
    }

    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      sendError(res, 415, 'http:error:unsupported-media-type', 'Unsupported media type.', 'Content-Type must be application/json.');
      return;
    }
    let input: unknown;
    try {
      input = JSON.parse(raw.toString('utf8'));
    } catch {
      sendError(res, 400, 'http:error:validation-fail', 'Bad request.', 'Request body is not valid JSON.');
      return;
    }
    const problem = validateCustomEvent(input);
    if (problem) {
      sendError(res, 400, problem.code, 'Bad request.', 'Input validation failure.', [{ name: problem.name, reason: problem.detail }]);
      return;
    }
    const event = input as { type: string; body: Record<string, unknown>; from?: string | null };

    const id = nextIdByConversation.get(conversationId) ?? 1;
    nextIdByConversation.set(conversationId, id + 1);
    const receivedAt = now();
    const from = typeof event.from === 'string' ? event.from : undefined;
    events.push({ conversationId, id, type: event.type, body: event.body, from, jwtClaims: claims.claims, receivedAt });
    notifyWaiters();

    const origin = `http://${req.headers.host ?? 'fake'}`;
    sendJson(res, 201, {
      id,
      type: event.type,
      from: from ?? null,
      body: event.body,
      timestamp: new Date(receivedAt).toISOString(),
      _links: { self: { href: `${origin}/${version}/conversations/${encodeURIComponent(conversationId)}/events/${id}` } },
    });
  }

  function verifyToken(
    authorization: string | undefined,
  ): { claims: jwt.JwtPayload } | { error: string; detail: string } {
    const invalidToken = { error: 'system:error:invalid-token', detail: 'You did not provide a valid token. Please provide a valid token.' };
    const match = /^Bearer (\S+)$/.exec(authorization ?? '');
    if (!match?.[1]) return invalidToken;
    let claims: jwt.JwtPayload;
    try {
      const verified = jwt.verify(match[1], publicKey, {
        algorithms: ['RS256'],
        clockTimestamp: Math.floor(now() / 1000),
      });
      if (typeof verified !== 'object') return invalidToken;
      claims = verified;
    } catch (error) {
      if (error instanceof jwt.TokenExpiredError) {
        return { error: 'system:error:expired-token', detail: 'The token you provided has expired.' };
      }
      return invalidToken;
    }
    const { application_id: applicationId, iat, jti, exp } = claims as jwt.JwtPayload & { application_id?: unknown };
    if (applicationId !== options.applicationId) return invalidToken;
    if (typeof iat !== 'number' || typeof exp !== 'number' || typeof jti !== 'string' || jti === '') return invalidToken;
    if (exp - iat > MAX_TOKEN_LIFETIME_SECONDS || exp <= iat) return invalidToken;
    if (Math.floor(now() / 1000) - iat > MAX_TOKEN_LIFETIME_SECONDS) {
      return { error: 'system:error:expired-token', detail: 'The token you provided has expired.' };
    }
    return { claims };
  }

  function sendScripted(res: http.ServerResponse, step: { status: number; retryAfter?: string; body?: unknown }): void {
    if (step.retryAfter !== undefined) res.setHeader('Retry-After', step.retryAfter);
    if (step.body !== undefined) {
      if (typeof step.body === 'string') {
        res.writeHead(step.status, { 'Content-Type': 'text/plain' }).end(step.body);
      } else {
        sendJson(res, step.status, step.body);
      }
      return;
    }
    const known = DEFAULT_ERRORS[step.status];
    if (known) sendError(res, step.status, known.code, known.title, known.detail);
    else if (step.status >= 500) sendError(res, step.status, 'system:error:internal-error', 'Internal Error.', 'Please try again later.');
    else if (step.status >= 400) sendError(res, step.status, `http:error:${step.status}`, 'Error.', 'Scripted error.');
    else res.writeHead(step.status).end();
  }

  function notifyWaiters(): void {
    for (const waiter of waiters) {
      if (events.length >= waiter.n) {
        waiters.delete(waiter);
        clearTimeout(waiter.timer);
        waiter.resolve(events.slice());
      }
    }
  }

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          sleeps.delete(entry);
          resolve();
        }, ms),
        wake: resolve,
      };
      sleeps.add(entry);
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    events,
    get requests() {
      return requests;
    },
    script(responses) {
      scripted.push(...responses);
    },
    waitForEvents(n, timeoutMs = 5000) {
      if (events.length >= n) return Promise.resolve(events.slice());
      return new Promise((resolve, reject) => {
        const waiter: Waiter = {
          n,
          resolve,
          reject,
          timer: setTimeout(() => {
            waiters.delete(waiter);
            reject(new Error(`fake Vonage: expected ${n} events within ${timeoutMs} ms, got ${events.length}`));
          }, timeoutMs),
        };
        waiters.add(waiter);
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const entry of sleeps) {
        clearTimeout(entry.timer);
        entry.wake();
      }
      sleeps.clear();
      for (const waiter of waiters) {
        clearTimeout(waiter.timer);
        waiter.reject(new Error('fake Vonage closed'));
      }
      waiters.clear();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await stopped;
    },
  };
}

function validateCustomEvent(input: unknown): { code: string; name: string; detail: string } | undefined {
  const fail = (name: string, detail: string, code = 'http:error:validation-fail') => ({ code, name, detail });
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return fail('body', 'Request body must be an object.');
  const event = input as Record<string, unknown>;
  const { type, body, from } = event;
  if (typeof type !== 'string') return fail('type', '"type" is required.');
  if (type.length > MAX_TYPE_CHARS) return fail('type', `"type" must not exceed ${MAX_TYPE_CHARS} characters.`);
  if (!CUSTOM_TYPE.test(type)) return fail('type', '"type" must match ^custom:[\\w\\-:]+');
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return fail('body', '"body" must be an object.');
  if (from !== undefined && from !== null && typeof from !== 'string') return fail('from', '"from" must be a member id.');
  const bytes = Buffer.byteLength(JSON.stringify(body), 'utf8');
  if (bytes > MAX_BODY_BYTES) {
    return fail('body', `Event body must not exceed ${MAX_BODY_BYTES} bytes (got ${bytes}).`, 'conversation:error:invalid-event');
  }
  return undefined;
}

async function readBody(req: http.IncomingMessage): Promise<Buffer | 'too-large'> {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_REQUEST_BYTES) tooLarge = true;
    else chunks.push(chunk);
  }
  return tooLarge ? 'too-large' : Buffer.concat(chunks);
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) }).end(text);
}

function sendError(
  res: http.ServerResponse,
  status: number,
  code: string,
  title: string,
  detail: string,
  invalidParameters?: Array<{ name: string; reason: string }>,
): void {
  sendJson(res, status, {
    type: `https://developer.nexmo.com/api/conversation#${code}`,
    title,
    code,
    detail,
    instance: crypto.randomUUID(),
    ...(invalidParameters ? { invalid_parameters: invalidParameters } : {}),
  });
}
