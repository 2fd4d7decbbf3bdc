/**
 * The Conversation API client: the only module that talks to Vonage.
 *
 * Vonage has announced the end of Conversation API messaging, so this stays deliberately small and
 * shaped like the bridge's `ConversationBackend` port. Another backend replaces this file, not the bridge.
 *
 * Every outcome is classified here, once, into the shared error classes so the worker decides with a
 * single `switch`: 2xx success; 429, 5xx and network failures retryable (with the server's
 * `Retry-After` when it gave one); any other status permanent, with Vonage's error `code`.
 * Errors never carry the JWT: a failure is summarised from its code, and only the requester's own
 * failure (which holds no URL and no header) is attached as `cause`.
 */
import { PermanentError, RetryableError } from '../errors';
import { scrubSecrets } from '../logger';
import { createHttpRequester, HttpRequestFailure, type HttpAnswer, type HttpRequester } from '../outbound-http';
import { parseRetryAfter } from '../retry-after';
import { clipChars, isRecord } from '../values';

export interface CustomEventInput {
  /** `custom:…`, at most 100 characters of `[A-Za-z0-9_:-]`. */
  type: string;
  /** At most 4096 bytes once serialised (Vonage's limit; the bridge splits longer content). */
  body: Record<string, unknown>;
  /** A member id (`MEM-…`) to attribute the event to. */
  from?: string;
}

export interface VonageClientOptions {
  /** Conversation API base with its version and no trailing slash needed, e.g. `https://api.nexmo.com/v1`. */
  baseUrl: string;
  tokenSource: { token(): string };
  /** Defaults to a requester of its own; the bridge passes the one it shares with the WeChat clients. */
  http?: HttpRequester;
  /** Whole-request deadline; default 10 s. */
  timeoutMs?: number;
  /** Clock in epoch ms, for `Retry-After` given as an HTTP date; default `Date.now`. */
  now?: () => number;
}

export interface VonageEvent {
  id: string;
  type: string;
  body: Record<string, unknown>;
  from: string | undefined;
  /** When Vonage stored it, epoch ms (undefined if the answer had no readable timestamp). */
  timestamp: number | undefined;
}

export interface VonageEventPage {
  events: VonageEvent[];
  /** Pass back as `cursor` for the next (older, with `order=desc`) page; undefined on the last page. */
  nextCursor: string | undefined;
}

/** A conversation as the client reads it (the fields the bridge uses). */
export interface VonageConversation {
  id: string;
  name: string;
  displayName: string | undefined;
}

/** A member of a conversation: which user, in which state (`JOINED`, `INVITED`, `LEFT`). */
export interface VonageMember {
  id: string;
  userId: string | undefined;
  state: string | undefined;
}

/** One page of a list; `nextCursor` is undefined on the last page. */
export interface VonagePage<T> {
  items: T[];
  nextCursor: string | undefined;
}

export interface VonageListOptions {
  /** 1–100; default 100. */
  pageSize?: number;
  cursor?: string;
  order?: 'asc' | 'desc';
}

export interface VonageClient {
  /** Posts a custom event; resolves with Vonage's event id (as a string; empty if a 2xx had no body). */
  createEvent(conversationId: string, event: CustomEventInput): Promise<{ id: string }>;
  /**
   * A conversation's events, newest first, one page (at most `pageSize` ≤ 100) at a time. Used to
   * find out whether an event whose post got no answer was created after all.
   */
  listRecentEvents(
    conversationId: string,
    options?: { pageSize?: number; eventType?: string; cursor?: string; startId?: string; order?: 'asc' | 'desc' },
  ): Promise<VonageEventPage>;

  /** `POST /conversations`. A taken `name` is a PermanentError with code `conversation:error:duplicate-name`. */
  createConversation(input: { name: string; displayName?: string; properties?: Record<string, unknown> }): Promise<VonageConversation>;
  /** `GET /conversations/{id}`. */
  getConversation(conversationId: string): Promise<VonageConversation>;
  /** `GET /conversations`, one page (v1 has no filter by name). */
  listConversations(options?: VonageListOptions): Promise<VonagePage<VonageConversation>>;
  /** `POST /users`. A taken `name` is a PermanentError (409). */
  createUser(input: { name: string; displayName?: string }): Promise<{ id: string; name: string }>;
  /** `GET /users?name=`: the user with exactly this name, or undefined. */
  findUserByName(name: string): Promise<{ id: string; name: string } | undefined>;
  /** `POST /conversations/{id}/members` with state `joined` and an `app` channel. */
  createMember(conversationId: string, input: { userId: string }): Promise<{ id: string }>;
  /** `GET /conversations/{id}/members`, one page. */
  listMembers(conversationId: string, options?: VonageListOptions): Promise<VonagePage<VonageMember>>;
}

/** Network-level failures that say nothing about whether the request itself was acceptable. */
const PERMANENT_TRANSPORT_CODES = new Set(['ERR_INVALID_URL', 'ERR_INVALID_CHAR', 'ERR_INVALID_HTTP_TOKEN']);

/** Failures before any byte of the request could reach the server. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN']);

const MAX_DETAIL_CHARS = 200;

/** Vonage's answers are small JSON; anything larger is not one. */
const MAX_RESPONSE_BYTES = 1024 * 1024;

export function createVonageClient(options: VonageClientOptions): VonageClient {
  const baseUrl = options.baseUrl.trim().replace(/\/+$/, '');
  let parsed: URL;
  try {
    parsed = new URL(baseUrl);
  } catch {
    throw new Error('Vonage API base URL is not a valid URL');
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new Error('Vonage API base URL must be http(s)');
  }
  const http = options.http ?? createHttpRequester();
  const timeoutMs = options.timeoutMs ?? 10_000;
  const now = options.now ?? Date.now;

  /** One authenticated call; resolves with the parsed 2xx body, or throws a classified error. */
  async function call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const what = `Vonage ${method} ${path.split('?')[0]}`;
    let bearer: string;
    try {
      bearer = options.tokenSource.token();
    } catch (error) {
      // A token that cannot be signed now will not sign later either (bad key, bad config).
      throw new PermanentError(`${what}: cannot create the application token (${errorSummary(error)})`, {
        code: 'local:token',
      });
    }
    let answer: HttpAnswer;
    try {
      // The requester's own timer bounds the whole exchange (connect, send, answer).
      answer = await http.request({
        method,
        url: baseUrl + path,
        headers: {
          Authorization: `Bearer ${bearer}`,
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
          Accept: 'application/json',
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        timeoutMs,
        maxResponseBytes: MAX_RESPONSE_BYTES,
      });
    } catch (error) {
      throw classifyTransportError(what, error);
    }
    return classifyResponse(what, answer, now());
  }

  const conversationPath = (conversationId: string): string => {
    if (typeof conversationId !== 'string' || conversationId === '') {
      throw new PermanentError('Vonage: empty conversation id', { code: 'local:invalid-conversation-id' });
    }
    return `/conversations/${encodeURIComponent(conversationId)}`;
  };

  return {
    async createEvent(conversationId, event) {
      const payload: Record<string, unknown> = { type: event.type, body: event.body };
      if (event.from !== undefined) payload.from = event.from;
      const body = await call('POST', `${conversationPath(conversationId)}/events`, payload);
      const id = isRecord(body) ? body.id : undefined;
      return { id: typeof id === 'number' || typeof id === 'string' ? String(id) : '' };
    },

    async listRecentEvents(conversationId, listOptions = {}) {
      const query = new URLSearchParams({
        page_size: String(Math.min(100, Math.max(1, listOptions.pageSize ?? 100))),
        order: listOptions.order ?? 'desc',
      });
      if (listOptions.eventType !== undefined) query.set('event_type', listOptions.eventType);
      if (listOptions.startId !== undefined) query.set('start_id', listOptions.startId);
      if (listOptions.cursor !== undefined) query.set('cursor', listOptions.cursor);
      const body = await call('GET', `${conversationPath(conversationId)}/events?${query}`);
      // v1 answers `_embedded` as an array of events; older shapes nest it under `events`.
      const embedded = isRecord(body) ? body._embedded : undefined;
      const items = Array.isArray(embedded) ? embedded : isRecord(embedded) && Array.isArray(embedded.events) ? embedded.events : [];
      const events = items.filter(isRecord).map((item) => {
        const at = typeof item.timestamp === 'string' ? Date.parse(item.timestamp) : Number.NaN;
        return {
          id: typeof item.id === 'number' || typeof item.id === 'string' ? String(item.id) : '',
          type: typeof item.type === 'string' ? item.type : '',
          body: isRecord(item.body) ? item.body : {},
          from: typeof item.from === 'string' ? item.from : undefined,
          timestamp: Number.isNaN(at) ? undefined : at,
        };
      });
      return { events, nextCursor: nextCursorOf(body) };
    },

    async createConversation(input) {
      const payload: Record<string, unknown> = { name: input.name };
      if (input.displayName !== undefined) payload.display_name = input.displayName;
      if (input.properties !== undefined) payload.properties = input.properties;
      return toConversation(await call('POST', '/conversations', payload), 'POST /conversations');
    },

    async getConversation(conversationId) {
      return toConversation(await call('GET', conversationPath(conversationId)), 'GET /conversations/{id}');
    },

    async listConversations(listOptions = {}) {
      const body = await call('GET', `/conversations?${listQuery(listOptions)}`);
      return { items: embeddedList(body, 'conversations').map((item) => toConversation(item, 'GET /conversations')), nextCursor: nextCursorOf(body) };
    },

    async createUser(input) {
      const payload: Record<string, unknown> = { name: input.name };
      if (input.displayName !== undefined) payload.display_name = input.displayName;
      const body = await call('POST', '/users', payload);
      return { id: requireId(body, 'POST /users'), name: isRecord(body) && typeof body.name === 'string' ? body.name : input.name };
    },

    async findUserByName(name) {
      const body = await call('GET', `/users?${new URLSearchParams({ name, page_size: '10' })}`);
      // Exact match only: a server that ignored the filter must not hand us someone else.
      const user = embeddedList(body, 'users').find((item) => item.name === name);
      return user ? { id: requireId(user, 'GET /users'), name } : undefined;
    },

    async createMember(conversationId, input) {
      const body = await call('POST', `${conversationPath(conversationId)}/members`, {
        state: 'joined',
        user: { id: input.userId },
        channel: { type: 'app' },
      });
      return { id: requireId(body, 'POST /conversations/{id}/members') };
    },

    async listMembers(conversationId, listOptions = {}) {
      const body = await call('GET', `${conversationPath(conversationId)}/members?${listQuery(listOptions)}`);
      const items = embeddedList(body, 'members').map((item) => {
        const embedded = isRecord(item._embedded) ? item._embedded : undefined;
        const user = embedded && isRecord(embedded.user) ? embedded.user : isRecord(item.user) ? item.user : undefined;
        return {
          id: requireId(item, 'GET /conversations/{id}/members'),
          userId: user && typeof user.id === 'string' ? user.id : undefined,
          state: typeof item.state === 'string' ? item.state : undefined,
        };
      });
      return { items, nextCursor: nextCursorOf(body) };
    },
  };
}

function listQuery(options: VonageListOptions): URLSearchParams {
  const query = new URLSearchParams({ page_size: String(Math.min(100, Math.max(1, options.pageSize ?? 100))) });
  if (options.order !== undefined) query.set('order', options.order);
  if (options.cursor !== undefined) query.set('cursor', options.cursor);
  return query;
}

/** `_embedded.<name>` (v1 lists), or `_embedded` itself when it is the array. */
function embeddedList(body: unknown, name: string): Array<Record<string, unknown>> {
  const embedded = isRecord(body) ? body._embedded : undefined;
  const items = Array.isArray(embedded) ? embedded : isRecord(embedded) && Array.isArray(embedded[name]) ? embedded[name] : [];
  return (items as unknown[]).filter(isRecord);
}

/** A 2xx without the id we asked for cannot be used: permanent, with the operation named. */
function requireId(body: unknown, what: string): string {
  const id = isRecord(body) ? body.id : undefined;
  if (typeof id === 'string' && id !== '') return id;
  throw new PermanentError(`Vonage ${what}: the answer has no id`, { code: 'local:no-id' });
}

function toConversation(body: unknown, what: string): VonageConversation {
  const id = requireId(body, what);
  const record = body as Record<string, unknown>;
  return {
    id,
    name: typeof record.name === 'string' ? record.name : '',
    displayName: typeof record.display_name === 'string' ? record.display_name : undefined,
  };
}

/** Vonage pages by following `_links.next.href`, whose query carries the cursor. */
function nextCursorOf(body: unknown): string | undefined {
  const links = isRecord(body) && isRecord(body._links) ? body._links : undefined;
  const href = links && isRecord(links.next) && typeof links.next.href === 'string' ? links.next.href : undefined;
  if (href === undefined) return undefined;
  try {
    return new URL(href).searchParams.get('cursor') ?? undefined;
  } catch {
    return undefined;
  }
}

function classifyResponse(what: string, answer: HttpAnswer, nowMs: number): unknown {
  const { status } = answer;
  const body = parseJson(answer.text);
  if (status >= 200 && status < 300) return body;

  const { code, detail } = vonageError(body);
  const message = `${what}: HTTP ${status}${code ? ` ${code}` : ''}${detail ? `: ${detail}` : ''}`;
  if (status === 429 || status >= 500) {
    // A 429 or a 503 means the server did not act on the request; after a 500 or a 504 it may have.
    const refused = status === 429 || status === 503;
    return throwing(new RetryableError(message, { retryAfterMs: parseRetryAfter(answer.headers['retry-after'], nowMs), refused }));
  }
  return throwing(new PermanentError(message, { code: code ?? `http:${status}` }));
}

/** Both of Vonage's error shapes: RFC 7807-like `{type,code,title,detail,instance}` and legacy `{code,description}`. */
function vonageError(body: unknown): { code: string | undefined; detail: string | undefined } {
  if (!isRecord(body)) return { code: undefined, detail: undefined };
  const code = typeof body.code === 'string' && body.code !== '' ? body.code : undefined;
  const text = [body.detail, body.description, body.title].find((v): v is string => typeof v === 'string' && v !== '');
  const invalid = Array.isArray(body.invalid_parameters)
    ? body.invalid_parameters
        .filter(isRecord)
        .map((p) => `${String(p.name)}: ${String(p.reason)}`)
        .join('; ')
    : '';
  const detail = [text, invalid && `(${invalid})`].filter(Boolean).join(' ');
  return { code, detail: detail === '' ? undefined : sanitize(detail) };
}

function classifyTransportError(what: string, error: unknown): Error {
  if (error instanceof HttpRequestFailure) {
    // `no answer within N ms, after the request was sent`, `ECONNREFUSED, before the request was sent`…
    const summary = sanitize(error.message);
    if (PERMANENT_TRANSPORT_CODES.has(error.code)) {
      return new PermanentError(`${what}: ${summary}`, { code: `local:${error.code}`, cause: error });
    }
    // Timeouts, resets, refused connections, DNS failures, TLS hiccups: the request may work later.
    // Only a connection never made is certain not to have reached Vonage (a failure before the
    // request was sent on a reused socket is not: part of it may have gone out).
    return new RetryableError(`${what}: ${summary}`, { cause: error, refused: !error.requestSent && NOT_SENT_CODES.has(error.code) });
  }
  // Another requester's error (tests, a proxy): summarised from its code and first line, never attached.
  const code = errorCode(error);
  const summary = transportSummary(error, code);
  const cause = Object.assign(new Error(summary), { code });
  if (code !== undefined && PERMANENT_TRANSPORT_CODES.has(code)) {
    return new PermanentError(`${what}: ${summary}`, { code: `local:${code}`, cause });
  }
  return new RetryableError(`${what}: ${summary}`, { cause, refused: code !== undefined && NOT_SENT_CODES.has(code) });
}

function transportSummary(error: unknown, code: string | undefined): string {
  const raw = error instanceof Error ? error.message : String(error);
  const line = sanitize(raw.split('\n')[0] ?? '');
  return code && !line.includes(code) ? `${line} (${code})` : line || 'network error';
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  const causeCode = (error as { cause?: { code?: unknown } }).cause?.code;
  return typeof causeCode === 'string' ? causeCode : undefined;
}

function errorSummary(error: unknown): string {
  return error instanceof Error ? sanitize(`${error.name}: ${error.message}`) : 'unknown error';
}

function parseJson(text: unknown): unknown {
  if (typeof text !== 'string' || text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Bounded, on one line, and scrubbed (a bearer token, a JWT), in case a server echoes one. */
function sanitize(text: string): string {
  const clean = scrubSecrets(text).replace(/[\r\n]+/g, ' ');
  return clipChars(clean, MAX_DETAIL_CHARS);
}

function throwing(error: Error): never {
  throw error;
}
