/**
 * The Vonage emulator's model of one application, in memory: its conversations and their events
 * (ids progressive per conversation), users and members, and the events posted with a token, for
 * tests to wait on. The views are the API's JSON shapes of them. No HTTP here: the routes
 * (routes.ts) and the dispatch to the application (dispatch.ts) read and change it, and every
 * conversation and event created is emitted to the listeners (a Client SDK's live connection).
 */
import type jwt from 'jsonwebtoken';
import { Listeners } from '../listeners';

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

/** An event as the API returns it (`GET …/events`) and as it is pushed to listeners. */
export interface EventView {
  id: number;
  type: string;
  from?: string;
  body: Record<string, unknown>;
  timestamp: string;
  _embedded?: { from_user: { id: string; name: string; display_name?: string }; from_member: { id: string } };
  _links: { self: { href: string } };
}

export interface ConversationView {
  id: string;
  name: string;
  display_name?: string;
  image_url?: string;
  state: 'ACTIVE';
  sequence_number: number;
  timestamp: { created: string };
  properties?: Record<string, unknown>;
  _links: { self: { href: string } };
}

export type VonageChange =
  | { type: 'conversation'; conversation: ConversationView }
  | { type: 'event'; conversationId: string; event: EventView };

export interface StoredEvent {
  id: number;
  type: string;
  from: string | undefined;
  body: Record<string, unknown>;
  at: number;
}

export interface ConversationState {
  id: string;
  name: string;
  displayName?: string;
  imageUrl?: string;
  properties?: Record<string, unknown>;
  createdAt: number;
  events: StoredEvent[];
  nextEventId: number;
}

export interface UserState {
  id: string;
  name: string;
  displayName?: string;
  imageUrl?: string;
  properties?: Record<string, unknown>;
}

export interface MemberState {
  id: string;
  conversationId: string;
  userId: string;
  state: 'JOINED' | 'INVITED';
  channel: Record<string, unknown>;
  at: number;
}

interface Waiter {
  n: number;
  resolve: (events: RecordedEvent[]) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class VonageState {
  /** Events created with a bearer token (`POST …/events`), in order. */
  readonly events: RecordedEvent[] = [];
  readonly conversations = new Map<string, ConversationState>();
  readonly users = new Map<string, UserState>();
  readonly members = new Map<string, MemberState>();
  /** The emulator's own address, for the links of the views it emits (set once it listens). */
  origin = '';
  private readonly waiters = new Set<Waiter>();
  private readonly listeners = new Listeners<VonageChange>();

  /** Clock for timestamps, epoch ms. */
  constructor(readonly now: () => number) {}

  newConversation(id: string, name: string): ConversationState {
    const conversation: ConversationState = { id, name, createdAt: this.now(), events: [], nextEventId: 1 };
    this.conversations.set(id, conversation);
    return conversation;
  }

  userByName(name: string): UserState | undefined {
    return [...this.users.values()].find((u) => u.name === name);
  }

  /** Appends an event; with the claims of the token that posted it, it is also a RecordedEvent. */
  addEvent(
    conversation: ConversationState,
    type: string,
    body: Record<string, unknown>,
    from: string | undefined,
    claims: jwt.JwtPayload | undefined,
  ): StoredEvent {
    const stored: StoredEvent = { id: conversation.nextEventId, type, from, body, at: this.now() };
    conversation.nextEventId += 1;
    conversation.events.push(stored);
    if (claims) {
      this.events.push({ conversationId: conversation.id, id: stored.id, type, body, from, jwtClaims: claims, receivedAt: stored.at });
      this.notifyWaiters();
    }
    this.emit({ type: 'event', conversationId: conversation.id, event: this.eventView(conversation, stored, this.origin, 'v1') });
    return stored;
  }

  /** Resolves with all recorded events once there are at least `n`; rejects after `timeoutMs`. */
  waitForEvents(n: number, timeoutMs: number): Promise<RecordedEvent[]> {
    if (this.events.length >= n) return Promise.resolve(this.events.slice());
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        n,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new Error(`Vonage emulator: expected ${n} events within ${timeoutMs} ms, got ${this.events.length}`));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /** Returns a function that removes the listener. */
  onChange(listener: (change: VonageChange) => void): () => void {
    return this.listeners.add(listener);
  }

  emit(change: VonageChange): void {
    this.listeners.emit(change);
  }

  /** Rejects the waits still open. */
  close(): void {
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error('Vonage emulator closed'));
    }
    this.waiters.clear();
  }

  private notifyWaiters(): void {
    for (const waiter of this.waiters) {
      if (this.events.length >= waiter.n) {
        this.waiters.delete(waiter);
        clearTimeout(waiter.timer);
        waiter.resolve(this.events.slice());
      }
    }
  }

  // --- views: `base` is the origin the client called, `version` its path prefix (v1, beta) ----------

  eventView(conversation: ConversationState, event: StoredEvent, base: string, version: string, nullFrom = false): EventView {
    const view: EventView = {
      id: event.id,
      type: event.type,
      ...(event.from !== undefined ? { from: event.from } : nullFrom ? { from: null as unknown as string } : {}),
      body: event.body,
      timestamp: new Date(event.at).toISOString(),
      _links: { self: { href: `${base}/${version}/conversations/${encodeURIComponent(conversation.id)}/events/${event.id}` } },
    };
    const member = event.from !== undefined ? this.members.get(event.from) : undefined;
    const user = member ? this.users.get(member.userId) : undefined;
    if (member && user) {
      view._embedded = {
        from_user: { id: user.id, name: user.name, ...(user.displayName ? { display_name: user.displayName } : {}) },
        from_member: { id: member.id },
      };
    }
    return view;
  }

  conversationView(conversation: ConversationState, base: string, version: string): ConversationView {
    return {
      id: conversation.id,
      name: conversation.name,
      ...(conversation.displayName !== undefined ? { display_name: conversation.displayName } : {}),
      ...(conversation.imageUrl !== undefined ? { image_url: conversation.imageUrl } : {}),
      state: 'ACTIVE',
      sequence_number: conversation.nextEventId - 1,
      timestamp: { created: new Date(conversation.createdAt).toISOString() },
      ...(conversation.properties !== undefined ? { properties: conversation.properties } : {}),
      _links: { self: { href: `${base}/${version}/conversations/${encodeURIComponent(conversation.id)}` } },
    };
  }

  userView(user: UserState, base: string, version: string): Record<string, unknown> {
    return {
      id: user.id,
      name: user.name,
      ...(user.displayName !== undefined ? { display_name: user.displayName } : {}),
      ...(user.imageUrl !== undefined ? { image_url: user.imageUrl } : {}),
      _links: { self: { href: `${base}/${version}/users/${encodeURIComponent(user.id)}` } },
    };
  }

  memberView(member: MemberState, base: string, version: string): Record<string, unknown> {
    const user = this.users.get(member.userId)!;
    return {
      id: member.id,
      conversation_id: member.conversationId,
      state: member.state,
      timestamp: { [member.state === 'JOINED' ? 'joined' : 'invited']: new Date(member.at).toISOString() },
      channel: member.channel,
      _embedded: { user: { id: user.id, name: user.name, ...(user.displayName ? { display_name: user.displayName } : {}) } },
      _links: {
        self: { href: `${base}/${version}/conversations/${encodeURIComponent(member.conversationId)}/members/${member.id}` },
      },
    };
  }
}
