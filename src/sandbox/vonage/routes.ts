/**
 * The Conversation API (v1) the Vonage emulator serves, with the documented paths, status codes and
 * error bodies, over the emulator's model (state.ts):
 *
 * - Every request needs `Authorization: Bearer` with an RS256 JWT from the application's private key:
 *   `application_id`, `iat`, `jti`, `exp` at most 24 h after `iat` (else 401
 *   `system:error:invalid-token` / `system:error:expired-token`). A token with `sub` is a Client SDK
 *   user token: `sub` must name a user, and the events it posts come from that user's member.
 * - `POST/GET /v1/conversations` (a duplicate `name` is 409 `conversation:error:duplicate-name`),
 *   `GET /v1/conversations/{id}`, `POST/GET /v1/users` (`?name=`), `GET /v1/users/{id}`,
 *   `POST/GET /v1/conversations/{id}/members` (a join adds a `member:joined` event),
 *   `POST/GET /v1/conversations/{id}/events` and `GET …/events/{event_id}`. Lists take `page_size`
 *   (1–100, default 10), `order` (`asc`/`desc`) and an opaque `cursor`, and answer `page_size`,
 *   `_embedded` (`{events|conversations|users|members: [...]}`) and
 *   `_links` (`first`, `self`, `next`, `prev`).
 * - Names: conversation and user `name` at most 100 characters, `display_name` at most 50,
 *   `image_url` an http(s) URL of at most 2048 (docs/emulator-limits.md lists every limit and its source).
 *   A user joined twice is 409 `conversation:error:member-already-joined`.
 * - Custom events: `type` matches `^custom:[\w\-:]+$` within 100 characters, `body` an object of at
 *   most 4096 bytes serialised (400 `http:error:validation-fail` / `conversation:error:invalid-event`),
 *   201 with `{id, type, from, body, timestamp, _links}`; ids are progressive integers per conversation.
 * - No trailing-slash normalisation (the real gateway stopped doing it in 2026): such paths are 404.
 * - Every event created is handed to the dispatch (dispatch.ts), in creation order.
 *
 * `eventsOnly` narrows it to what the bridge's own tests were written against: only `POST` and
 * `GET /{v1|beta}/conversations/{id}/events`, to any conversation id, never checking `from`.
 *
 * Tests steer failures with `script([...])`: one entry is consumed per incoming request, in arrival
 * order, before normal handling. `{status}` answers with that status (a Vonage-shaped error body unless
 * `body` is given); `{delayMs}` waits, then handles normally unless the client has gone away meanwhile
 * (a timed-out request is then *not* recorded); `{reset: true}` destroys the socket; `{loseAnswer: true}`
 * handles the request (an event is created) and then destroys the socket instead of answering.
 * `loseEventAnswers(n)` does the same to every n-th created event, for load tests.
 */
import * as crypto from 'node:crypto';
import type * as http from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import jwt from 'jsonwebtoken';
import type { TrafficRecorder } from '../traffic';
import type { Dispatcher } from './dispatch';
import type { ConversationState, MemberState, StoredEvent, UserState, VonageState } from './state';

const VERSION_PREFIX = /^\/(v1|beta)(\/.*)$/;
const CUSTOM_TYPE = /^custom:[\w\-:]+$/;
const MAX_TYPE_CHARS = 100;
const MAX_BODY_BYTES = 4096;
// Conversation API v1 reference (developer.vonage.com/en/api/conversation): conversation and user
// `name` at most 100 characters, `display_name` at most 50, `image_url` a URL of at most 2048.
const MAX_NAME_CHARS = 100;
const MAX_DISPLAY_NAME_CHARS = 50;
const MAX_URL_CHARS = 2048;
const MAX_REQUEST_BYTES = 1024 * 1024;
const MAX_TOKEN_LIFETIME_SECONDS = 24 * 60 * 60;
const DEFAULT_PAGE_SIZE = 10;
const MAX_PAGE_SIZE = 100;

const DEFAULT_ERRORS: Record<number, { code: string; title: string; detail: string }> = {
  400: { code: 'http:error:validation-fail', title: 'Bad request.', detail: 'Input validation failure.' },
  401: { code: 'system:error:invalid-token', title: 'Unauthorized.', detail: 'You did not provide a valid token. Please provide a valid token.' },
  403: { code: 'system:error:forbidden', title: 'Forbidden.', detail: 'You do not have permission to access this resource.' },
  404: { code: 'conversation:error:not-found', title: 'Not found.', detail: 'Conversation does not exist, or you do not have access.' },
  409: { code: 'conversation:error:not-allowed', title: 'Conflict.', detail: 'The request conflicts with the state of the conversation.' },
  429: { code: 'http:error:too-many-request', title: 'Too Many Requests.', detail: 'You have exceeded the rate limit.' },
};

/** A refusal on its way to the client: thrown inside handlers, answered by the request loop. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly title: string,
    readonly detail: string,
    readonly invalidParameters?: Array<{ name: string; reason: string }>,
  ) {
    super(detail);
  }
}

const notFoundRoute = () => new ApiError(404, 'http:error:not-found', 'Not found.', 'The requested resource does not exist.');
const conversationNotFound = () =>
  new ApiError(404, 'conversation:error:not-found', 'Not found.', 'Conversation does not exist, or you do not have access.');
const validation = (name: string, reason: string, code = 'http:error:validation-fail') =>
  new ApiError(400, code, 'Bad request.', 'Input validation failure.', [{ name, reason }]);

interface RequestContext {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  url: URL;
  version: string;
  /** The path after the version prefix. */
  path: string;
  raw: Buffer;
  origin: string;
}

export type ScriptedResponse =
  | { status: number; retryAfter?: string; body?: unknown }
  | { delayMs: number }
  | { reset: true }
  /** Handle the request normally (an event is created), then drop the connection instead of answering. */
  | { loseAnswer: true };

export interface VonageRoutesDeps {
  state: VonageState;
  dispatcher: Dispatcher;
  traffic: TrafficRecorder;
  /** Clock for token checks, epoch ms. */
  now: () => number;
  publicKeyPem: string;
  applicationId: string;
  /** The narrow surface of the bridge's tests (see above). */
  eventsOnly: boolean;
  /** Who a request came from, for the traffic log. */
  callerOf: (claims: jwt.JwtPayload) => string;
  /** Aborted when the emulator closes: a scripted delay then ends unanswered. */
  signal: AbortSignal;
}

export interface VonageRoutes {
  listener: http.RequestListener;
  /** Every POST seen, including refused and scripted ones. */
  readonly requests: number;
  script(responses: ScriptedResponse[]): void;
  clearScript(): void;
  loseEventAnswers(everyNth: number): void;
}

export function createVonageRoutes(deps: VonageRoutesDeps): VonageRoutes {
  const { state, dispatcher, traffic, now, eventsOnly, callerOf } = deps;
  const publicKey = crypto.createPublicKey(deps.publicKeyPem);
  const scripted: ScriptedResponse[] = [];
  let requests = 0;
  let loseEveryNth = 0;
  let createdSinceLoss = 0;

  /** An event joins its conversation, then goes to the application. */
  function addEvent(
    conversation: ConversationState,
    type: string,
    body: Record<string, unknown>,
    from: string | undefined,
    claims: jwt.JwtPayload | undefined,
  ): StoredEvent {
    const stored = state.addEvent(conversation, type, body, from, claims);
    dispatcher.dispatchEvent(conversation, stored);
    return stored;
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = now();
    if (req.method === 'POST') requests += 1;
    let step = scripted.shift(); // taken on arrival, so entries follow request order
    const raw = await readBody(req);
    const url = new URL(req.url ?? '/', 'http://vonage.invalid');
    let caller = 'unknown';
    const record = (status: number | undefined, responseBody: string | undefined, error?: string) =>
      traffic.record({
        at: started,
        channel: 'vonage-api',
        caller,
        method: req.method ?? 'GET',
        path: `${url.pathname}${url.search}`,
        ...(raw !== 'too-large' && raw.length > 0 ? { requestBody: raw.toString('utf8') } : {}),
        ...(status !== undefined ? { status } : {}),
        ...(responseBody !== undefined ? { responseBody } : {}),
        ...(error !== undefined ? { error } : {}),
        durationMs: now() - started,
      });

    if (raw === 'too-large') {
      record(413, sendError(res, 413, 'http:error:too-large', 'Payload too large.', 'The request body is too large.'));
      return;
    }
    if (step && 'reset' in step) {
      record(undefined, undefined, 'connection reset (scripted)');
      req.socket.destroy();
      return;
    }
    if (step && 'delayMs' in step) {
      await delay(step.delayMs, undefined, { signal: deps.signal }).catch(() => undefined);
      if (deps.signal.aborted || res.destroyed || req.socket.destroyed) return;
    }
    if (step && 'status' in step) {
      record(step.status, sendScripted(res, step));
      return;
    }
    const versioned = VERSION_PREFIX.exec(url.pathname);
    const context: RequestContext = {
      req,
      res,
      url,
      version: versioned?.[1] ?? 'v1',
      path: versioned?.[2] ?? '',
      raw,
      origin: `http://${req.headers.host ?? 'vonage.invalid'}`,
    };
    try {
      if (!versioned) throw notFoundRoute();
      const answer = eventsOnly ? handleEventsOnly(context, (c) => (caller = c)) : handleFull(context, (c) => (caller = c));
      const createdEvent = req.method === 'POST' && answer.status === 201 && /\/events$/.test(context.path);
      if (createdEvent && loseEveryNth > 0 && (createdSinceLoss = (createdSinceLoss + 1) % loseEveryNth) === 0) {
        step = { loseAnswer: true };
      }
      if (step && 'loseAnswer' in step) {
        record(undefined, undefined, 'answer lost after the request was handled (scripted)');
        req.socket.destroy();
        return;
      }
      record(answer.status, sendJson(res, answer.status, answer.body));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      record(error.status, sendError(res, error.status, error.code, error.title, error.detail, error.invalidParameters));
    }
  }

  // --- authentication --------------------------------------------------------------------------------

  function verifyToken(authorization: string | undefined): jwt.JwtPayload {
    const invalidToken = () =>
      new ApiError(401, 'system:error:invalid-token', 'Unauthorized.', 'You did not provide a valid token. Please provide a valid token.');
    const expiredToken = () => new ApiError(401, 'system:error:expired-token', 'Unauthorized.', 'The token you provided has expired.');
    const match = /^Bearer (\S+)$/.exec(authorization ?? '');
    if (!match?.[1]) throw invalidToken();
    let claims: jwt.JwtPayload;
    try {
      const verified = jwt.verify(match[1], publicKey, { algorithms: ['RS256'], clockTimestamp: Math.floor(now() / 1000) });
      if (typeof verified !== 'object') throw invalidToken();
      claims = verified;
    } catch (error) {
      if (error instanceof ApiError) throw error;
      if (error instanceof jwt.TokenExpiredError) throw expiredToken();
      throw invalidToken();
    }
    const { application_id: applicationId, iat, jti, exp } = claims as jwt.JwtPayload & { application_id?: unknown };
    if (applicationId !== deps.applicationId) throw invalidToken();
    if (typeof iat !== 'number' || typeof exp !== 'number' || typeof jti !== 'string' || jti === '') throw invalidToken();
    if (exp - iat > MAX_TOKEN_LIFETIME_SECONDS || exp <= iat) throw invalidToken();
    if (Math.floor(now() / 1000) - iat > MAX_TOKEN_LIFETIME_SECONDS) throw expiredToken();
    if (!eventsOnly && claims.sub !== undefined && (typeof claims.sub !== 'string' || !state.userByName(claims.sub))) throw invalidToken();
    return claims;
  }

  function readJson(context: RequestContext, optional = false): Record<string, unknown> {
    if (optional && context.raw.length === 0) return {};
    if (!/^application\/json\b/i.test(context.req.headers['content-type'] ?? '')) {
      throw new ApiError(415, 'http:error:unsupported-media-type', 'Unsupported media type.', 'Content-Type must be application/json.');
    }
    let input: unknown;
    try {
      input = JSON.parse(context.raw.toString('utf8'));
    } catch {
      throw new ApiError(400, 'http:error:validation-fail', 'Bad request.', 'Request body is not valid JSON.');
    }
    if (typeof input !== 'object' || input === null || Array.isArray(input)) throw validation('body', 'Request body must be an object.');
    return input as Record<string, unknown>;
  }

  // --- the narrow surface ----------------------------------------------------------------------------

  function handleEventsOnly(context: RequestContext, setCaller: (caller: string) => void): Answer {
    const route = /^\/conversations\/([^/]+)\/events$/.exec(context.path);
    if (!route) throw notFoundRoute();
    if (context.req.method !== 'POST' && context.req.method !== 'GET') {
      throw new ApiError(405, 'http:error:method-not-allowed', 'Method not allowed.', `${context.req.method} is not allowed here.`);
    }
    const conversationId = decodeId(route[1]!);
    const claims = verifyToken(context.req.headers.authorization);
    setCaller(callerOf(claims));
    // Listing is part of the narrow surface too: the bridge reads a conversation's newest events to
    // tell whether a post whose answer was lost went through.
    if (context.req.method === 'GET') {
      return listEvents(context, state.conversations.get(conversationId) ?? state.newConversation(conversationId, conversationId));
    }
    const input = readJson(context);
    const event = validateCustomEvent(input);
    const conversation = state.conversations.get(conversationId) ?? state.newConversation(conversationId, conversationId);
    const stored = addEvent(conversation, event.type, event.body, event.from, claims);
    return { status: 201, body: state.eventView(conversation, stored, context.origin, context.version, true) };
  }

  // --- the whole API ---------------------------------------------------------------------------------

  function handleFull(context: RequestContext, setCaller: (caller: string) => void): Answer {
    const method = context.req.method ?? 'GET';
    const segments = context.path.split('/').slice(1);
    if (segments.some((s) => s === '')) throw notFoundRoute(); // trailing or doubled slashes
    const allow = (...methods: string[]) => {
      if (!methods.includes(method)) {
        throw new ApiError(405, 'http:error:method-not-allowed', 'Method not allowed.', `${method} is not allowed here.`);
      }
    };
    const authenticate = () => {
      const claims = verifyToken(context.req.headers.authorization);
      setCaller(callerOf(claims));
      return claims;
    };
    const [collection, id, sub, subId, ...rest] = segments;
    if (rest.length > 0) throw notFoundRoute();

    if (collection === 'users') {
      if (sub !== undefined) throw notFoundRoute();
      if (id === undefined) {
        allow('GET', 'POST');
        authenticate();
        return method === 'POST' ? createUser(context) : listUsers(context);
      }
      allow('GET');
      authenticate();
      const user = state.users.get(decodeId(id));
      if (!user) throw new ApiError(404, 'user:error:not-found', 'Not found.', 'User does not exist, or you do not have access.');
      return { status: 200, body: state.userView(user, context.origin, context.version) };
    }
    if (collection !== 'conversations') throw notFoundRoute();
    if (id === undefined) {
      allow('GET', 'POST');
      authenticate();
      return method === 'POST' ? createConversation(context) : listConversations(context);
    }
    const conversationId = decodeId(id);
    if (sub === undefined) {
      allow('GET');
      authenticate();
      const conversation = state.conversations.get(conversationId);
      if (!conversation) throw conversationNotFound();
      return { status: 200, body: state.conversationView(conversation, context.origin, context.version) };
    }
    if (sub === 'members' && subId === undefined) {
      allow('GET', 'POST');
      authenticate();
      const conversation = state.conversations.get(conversationId);
      if (!conversation) throw conversationNotFound();
      return method === 'POST' ? createMember(context, conversation) : listMembers(context, conversation);
    }
    if (sub === 'events' && subId === undefined) {
      allow('GET', 'POST');
      const claims = authenticate();
      const conversation = state.conversations.get(conversationId);
      if (!conversation) throw conversationNotFound();
      return method === 'POST' ? postEvent(context, conversation, claims) : listEvents(context, conversation);
    }
    if (sub === 'events' && subId !== undefined) {
      allow('GET');
      authenticate();
      const conversation = state.conversations.get(conversationId);
      if (!conversation) throw conversationNotFound();
      const event = /^\d+$/.test(subId) ? conversation.events.find((e) => e.id === Number(subId)) : undefined;
      if (!event) throw new ApiError(404, 'event:error:not-found', 'Not found.', 'Event does not exist, or you do not have access.');
      return { status: 200, body: state.eventView(conversation, event, context.origin, context.version) };
    }
    throw notFoundRoute();
  }

  function createConversation(context: RequestContext): Answer {
    const input = readJson(context, true);
    const name = optionalString(input, 'name', MAX_NAME_CHARS);
    const displayName = optionalString(input, 'display_name', MAX_DISPLAY_NAME_CHARS);
    const imageUrl = optionalUrl(input, 'image_url');
    const properties = input['properties'];
    if (properties !== undefined && (typeof properties !== 'object' || properties === null || Array.isArray(properties))) {
      throw validation('properties', '"properties" must be an object.');
    }
    if (name !== undefined && [...state.conversations.values()].some((c) => c.name === name)) {
      throw new ApiError(
        409,
        'conversation:error:duplicate-name',
        'Bad request.',
        'The request failed because the conversation name already exists. Please provide a unique name and try again.',
      );
    }
    const conversation = state.newConversation(`CON-${crypto.randomUUID()}`, name ?? `NAM-${crypto.randomUUID()}`);
    if (displayName !== undefined) conversation.displayName = displayName;
    if (imageUrl !== undefined) conversation.imageUrl = imageUrl;
    if (properties !== undefined) conversation.properties = properties as Record<string, unknown>;
    const view = state.conversationView(conversation, context.origin, context.version);
    state.emit({ type: 'conversation', conversation: view });
    // Like the live service: an application event, with neither an event `id` nor a `conversation_id`.
    dispatcher.dispatchPayload(conversation, {
      type: 'conversation:created',
      body: { id: conversation.id, name: conversation.name, ...(displayName !== undefined ? { display_name: displayName } : {}) },
      application_id: deps.applicationId,
      timestamp: new Date(conversation.createdAt).toISOString(),
    }, 0);
    return { status: 201, body: view };
  }

  function listConversations(context: RequestContext): Answer {
    const page = paginate([...state.conversations.values()], context);
    return {
      status: 200,
      body: {
        page_size: page.pageSize,
        _embedded: { conversations: page.items.map((c) => state.conversationView(c, context.origin, context.version)) },
        _links: page.links,
      },
    };
  }

  function createUser(context: RequestContext): Answer {
    const input = readJson(context, true);
    const name = optionalString(input, 'name', MAX_NAME_CHARS);
    const displayName = optionalString(input, 'display_name', MAX_DISPLAY_NAME_CHARS);
    const imageUrl = optionalUrl(input, 'image_url');
    if (name !== undefined && state.userByName(name)) {
      throw new ApiError(409, 'user:error:duplicate-name', 'Conflict.', `User with name ${name} already exists.`);
    }
    const user: UserState = { id: `USR-${crypto.randomUUID()}`, name: name ?? `NAM-${crypto.randomUUID()}` };
    if (displayName !== undefined) user.displayName = displayName;
    if (imageUrl !== undefined) user.imageUrl = imageUrl;
    state.users.set(user.id, user);
    return { status: 201, body: state.userView(user, context.origin, context.version) };
  }

  function listUsers(context: RequestContext): Answer {
    const name = context.url.searchParams.get('name');
    const all = [...state.users.values()].filter((u) => name === null || u.name === name);
    const page = paginate(all, context);
    return {
      status: 200,
      body: { page_size: page.pageSize, _embedded: { users: page.items.map((u) => state.userView(u, context.origin, context.version)) }, _links: page.links },
    };
  }

  function createMember(context: RequestContext, conversation: ConversationState): Answer {
    const input = readJson(context);
    const joining = input['state'];
    if (joining !== 'joined' && joining !== 'invited') throw validation('state', '"state" must be one of joined, invited.');
    const userRef = input['user'];
    if (typeof userRef !== 'object' || userRef === null || Array.isArray(userRef)) throw validation('user', '"user" must be an object with id or name.');
    const { id, name } = userRef as Record<string, unknown>;
    const user = typeof id === 'string' ? state.users.get(id) : typeof name === 'string' ? state.userByName(name) : undefined;
    if (!user) throw new ApiError(404, 'user:error:not-found', 'Not found.', 'User does not exist, or you do not have access.');
    const channel = input['channel'] ?? { type: 'app' };
    if (typeof channel !== 'object' || channel === null || Array.isArray(channel)) throw validation('channel', '"channel" must be an object.');
    if ([...state.members.values()].some((m) => m.conversationId === conversation.id && m.userId === user.id)) {
      throw new ApiError(409, 'conversation:error:member-already-joined', 'Conflict.', `User ${user.name} is already a member of this conversation.`);
    }
    const member: MemberState = {
      id: `MEM-${crypto.randomUUID()}`,
      conversationId: conversation.id,
      userId: user.id,
      state: joining === 'joined' ? 'JOINED' : 'INVITED',
      channel: channel as Record<string, unknown>,
      at: now(),
    };
    state.members.set(member.id, member);
    addEvent(
      conversation,
      `member:${joining}`,
      {
        user: { id: user.id, name: user.name, ...(user.displayName ? { display_name: user.displayName } : {}) },
        channel: member.channel,
        member_id: member.id,
        timestamp: { [joining]: new Date(member.at).toISOString() },
      },
      member.id,
      undefined,
    );
    return { status: 201, body: state.memberView(member, context.origin, context.version) };
  }

  function listMembers(context: RequestContext, conversation: ConversationState): Answer {
    const all = [...state.members.values()].filter((m) => m.conversationId === conversation.id);
    const page = paginate(all, context);
    return {
      status: 200,
      body: { page_size: page.pageSize, _embedded: { members: page.items.map((m) => state.memberView(m, context.origin, context.version)) }, _links: page.links },
    };
  }

  function postEvent(context: RequestContext, conversation: ConversationState, claims: jwt.JwtPayload): Answer {
    const input = readJson(context);
    const event = validateCustomEvent(input);
    let from = event.from;
    const userName = typeof claims.sub === 'string' ? claims.sub : undefined;
    if (userName !== undefined) {
      // A user token speaks as that user's member of the conversation, and only as it.
      const own = [...state.members.values()].find(
        (m) => m.conversationId === conversation.id && state.users.get(m.userId)?.name === userName && m.state === 'JOINED',
      );
      if (!own) throw new ApiError(403, 'system:error:forbidden', 'Forbidden.', `User ${userName} is not a member of this conversation.`);
      if (from !== undefined && from !== own.id) throw validation('from', '"from" must be your own member id.');
      from = own.id;
    } else if (from !== undefined) {
      const member = state.members.get(from);
      if (!member || member.conversationId !== conversation.id) {
        throw new ApiError(404, 'member:error:not-found', 'Not found.', 'Member does not exist, or you do not have access.');
      }
    }
    const stored = addEvent(conversation, event.type, event.body, from, claims);
    return { status: 201, body: state.eventView(conversation, stored, context.origin, context.version, true) };
  }

  function listEvents(context: RequestContext, conversation: ConversationState): Answer {
    const params = context.url.searchParams;
    const eventType = params.get('event_type');
    const startId = integerParam(params, 'start_id');
    const endId = integerParam(params, 'end_id');
    const all = conversation.events.filter(
      (e) =>
        (eventType === null || e.type === eventType) &&
        (startId === undefined || e.id >= startId) &&
        (endId === undefined || e.id <= endId),
    );
    const page = paginate(all, context);
    return {
      status: 200,
      body: {
        page_size: page.pageSize,
        // The live v1 API nests the page under `events` (docs/emulator-limits.md names the source).
        _embedded: { events: page.items.map((e) => state.eventView(conversation, e, context.origin, context.version)) },
        _links: page.links,
      },
    };
  }

  /** Offset pagination behind an opaque cursor, with Vonage's `_links`. */
  function paginate<T>(all: T[], context: RequestContext): { items: T[]; pageSize: number; links: Record<string, { href: string }> } {
    const params = context.url.searchParams;
    const pageSize = integerParam(params, 'page_size') ?? DEFAULT_PAGE_SIZE;
    if (pageSize < 1 || pageSize > MAX_PAGE_SIZE) throw validation('page_size', `"page_size" must be from 1 to ${MAX_PAGE_SIZE}.`);
    const order = params.get('order') ?? 'asc';
    if (order !== 'asc' && order !== 'desc' && order !== 'ASC' && order !== 'DESC') throw validation('order', '"order" must be asc or desc.');
    const cursor = params.get('cursor');
    let offset = 0;
    if (cursor !== null) {
      const decoded = decodeCursor(cursor);
      if (decoded === undefined) throw validation('cursor', '"cursor" is not valid.');
      offset = decoded;
    }
    const ordered = order.toLowerCase() === 'desc' ? [...all].reverse() : all;
    const items = ordered.slice(offset, offset + pageSize);
    const href = (at: number | undefined) => {
      const query = new URLSearchParams(params);
      query.delete('cursor');
      if (at !== undefined) query.set('cursor', encodeCursor(at));
      const text = query.toString();
      return { href: `${context.origin}/${context.version}${context.path}${text ? `?${text}` : ''}` };
    };
    const links: Record<string, { href: string }> = { first: href(undefined), self: href(cursor === null ? undefined : offset) };
    if (offset + pageSize < ordered.length) links.next = href(offset + pageSize);
    if (offset > 0) links.prev = href(Math.max(0, offset - pageSize));
    return { items, pageSize, links };
  }

  function sendScripted(res: http.ServerResponse, step: { status: number; retryAfter?: string; body?: unknown }): string {
    if (step.retryAfter !== undefined) res.setHeader('Retry-After', step.retryAfter);
    if (step.body !== undefined) {
      if (typeof step.body === 'string') {
        res.writeHead(step.status, { 'Content-Type': 'text/plain' }).end(step.body);
        return step.body;
      }
      return sendJson(res, step.status, step.body);
    }
    const known = DEFAULT_ERRORS[step.status];
    if (known) return sendError(res, step.status, known.code, known.title, known.detail);
    if (step.status >= 500) return sendError(res, step.status, 'system:error:internal-error', 'Internal Error.', 'Please try again later.');
    if (step.status >= 400) return sendError(res, step.status, `http:error:${step.status}`, 'Error.', 'Scripted error.');
    res.writeHead(step.status).end();
    return '';
  }

  return {
    listener: (req, res) => {
      handle(req, res).catch(() => {
        if (!res.headersSent) sendError(res, 500, 'system:error:internal-error', 'Internal Error.', 'Emulator error.');
        else res.destroy();
      });
    },
    get requests() {
      return requests;
    },
    script(responses) {
      scripted.push(...responses);
    },
    clearScript() {
      scripted.length = 0;
    },
    loseEventAnswers(everyNth) {
      loseEveryNth = everyNth;
      createdSinceLoss = 0;
    },
  };
}

type Answer = { status: number; body: unknown };

function validateCustomEvent(input: unknown): { type: string; body: Record<string, unknown>; from: string | undefined } {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw validation('body', 'Request body must be an object.');
  const event = input as Record<string, unknown>;
  const { type, body, from } = event;
  if (typeof type !== 'string') throw validation('type', '"type" is required.');
  if (type.length > MAX_TYPE_CHARS) throw validation('type', `"type" must not exceed ${MAX_TYPE_CHARS} characters.`);
  if (!CUSTOM_TYPE.test(type)) throw validation('type', '"type" must match ^custom:[\\w\\-:]+');
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw validation('body', '"body" must be an object.');
  if (from !== undefined && from !== null && typeof from !== 'string') throw validation('from', '"from" must be a member id.');
  const bytes = Buffer.byteLength(JSON.stringify(body), 'utf8');
  if (bytes > MAX_BODY_BYTES) {
    throw validation('body', `Event body must not exceed ${MAX_BODY_BYTES} bytes (got ${bytes}).`, 'conversation:error:invalid-event');
  }
  return { type, body: body as Record<string, unknown>, from: typeof from === 'string' ? from : undefined };
}

function decodeId(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw conversationNotFound();
  }
}

function optionalString(input: Record<string, unknown>, name: string, maxChars: number): string | undefined {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value === '' || value.length > maxChars) {
    throw validation(name, `"${name}" must be a non-empty string of at most ${maxChars} characters.`);
  }
  return value;
}

function optionalUrl(input: Record<string, unknown>, name: string): string | undefined {
  const value = optionalString(input, name, MAX_URL_CHARS);
  if (value !== undefined && !/^https?:\/\/[^\s]+$/i.test(value)) throw validation(name, `"${name}" must be an http(s) URL.`);
  return value;
}

function integerParam(params: URLSearchParams, name: string): number | undefined {
  const value = params.get(name);
  if (value === null) return undefined;
  if (!/^\d{1,9}$/.test(value)) throw validation(name, `"${name}" must be a non-negative integer.`);
  return Number(value);
}

function encodeCursor(offset: number): string {
  return Buffer.from(JSON.stringify({ o: offset }), 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): number | undefined {
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { o?: unknown };
    return typeof parsed.o === 'number' && Number.isSafeInteger(parsed.o) && parsed.o >= 0 ? parsed.o : undefined;
  } catch {
    return undefined;
  }
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

function sendJson(res: http.ServerResponse, status: number, body: unknown): string {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) }).end(text);
  return text;
}

function sendError(
  res: http.ServerResponse,
  status: number,
  code: string,
  title: string,
  detail: string,
  invalidParameters?: Array<{ name: string; reason: string }>,
): string {
  return sendJson(res, status, {
    type: `https://developer.nexmo.com/api/conversation#${code}`,
    title,
    code,
    detail,
    instance: crypto.randomUUID(),
    ...(invalidParameters ? { invalid_parameters: invalidParameters } : {}),
  });
}
