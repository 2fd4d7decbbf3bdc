/**
 * The reply window's rules (pure) and the tracker over a real SQLite store in memory.
 */
import {
  allowanceOf,
  createReplyWindowTracker,
  DEFAULT_REPLY_WINDOW_RULES,
  describeReplyWindow,
  replyWindowGrantOf,
  replyWindowOf,
  withReplyWindow,
} from '../../../src/bridge/reply-window';
import type { DeliverToVonagePayload, JobOf } from '../../../src/bridge/jobs';
import { inboundJobs } from '../../../src/bridge/to-vonage/inbound-jobs';
import { readWeChatMessage } from '../../../src/wechat/message';
import { SqliteStore } from '../../../src/store/sqlite/store';

const T = Date.UTC(2026, 11, 2, 12, 0, 0);
const HOUR = 3_600_000;
const message = (msgType: string, event?: string, createTime = String(T / 1000)) => ({ msgType, event, createTime });

describe('replyWindowGrantOf', () => {
  test('a user message opens the 48-hour window from its CreateTime, never later than it was received', () => {
    expect(replyWindowGrantOf(message('text'), T + 5_000)).toEqual({ kind: 'message', openedAt: T });
    expect(replyWindowGrantOf(message('image'), T - 5_000)).toEqual({ kind: 'message', openedAt: T - 5_000 });
    expect(replyWindowGrantOf(message('voice', undefined, 'not a number'), T)).toEqual({ kind: 'message', openedAt: T });
  });

  test('follow, scan and the menu clicks that push an event open the 1-minute window; unfollow closes it', () => {
    for (const event of ['subscribe', 'SCAN', 'CLICK', 'scancode_push', 'scancode_waitmsg']) {
      expect(replyWindowGrantOf(message('event', event), T)).toEqual({ kind: 'interaction', openedAt: T });
    }
    expect(replyWindowGrantOf(message('event', 'unsubscribe'), T)).toEqual({ kind: 'close' });
    for (const event of ['LOCATION', 'VIEW', 'TEMPLATESENDJOBFINISH', 'subscribe_msg_popup_event']) {
      expect(replyWindowGrantOf(message('event', event), T)).toBeUndefined();
    }
  });
});

describe('replyWindowOf and describeReplyWindow', () => {
  const rules = DEFAULT_REPLY_WINDOW_RULES;
  const scope = 'wechat:default:o';

  test('open allowances add up; the window closes with the latest one that still allows a reply', () => {
    const messageWindow = allowanceOf(scope, { kind: 'message', openedAt: T }, rules);
    const follow = allowanceOf(scope, { kind: 'interaction', openedAt: T }, rules);
    expect(replyWindowOf([follow, messageWindow], T + 1_000)).toEqual({ closes_at: T / 1000 + 48 * 3600, replies_left: 8 });
    expect(replyWindowOf([follow, messageWindow], T + 61_000)).toEqual({ closes_at: T / 1000 + 48 * 3600, replies_left: 5 });
    expect(replyWindowOf([follow, { ...messageWindow, remaining: 0 }], T + 1_000)).toEqual({ closes_at: T / 1000 + 60, replies_left: 3 });
  });

  test('used up or expired: no replies, and when it closed', () => {
    const used = { ...allowanceOf(scope, { kind: 'message', openedAt: T }, rules), remaining: 0 };
    expect(replyWindowOf([used], T + HOUR)).toEqual({ closes_at: T / 1000 + 48 * 3600, replies_left: 0 });
    expect(replyWindowOf([], T)).toEqual({ closes_at: 0, replies_left: 0 });
    expect(describeReplyWindow({ closes_at: T / 1000 + 2 * 3600 + 59, replies_left: 3 }, T)).toBe('closes in 2 h · 3 replies left');
    expect(describeReplyWindow({ closes_at: T / 1000 + 45, replies_left: 1 }, T)).toBe('closes in 45 s · 1 reply left');
    expect(describeReplyWindow({ closes_at: T / 1000 + 600, replies_left: 0 }, T)).toMatch(/^no replies left/);
    expect(describeReplyWindow({ closes_at: T / 1000 - 1, replies_left: 0 }, T)).toMatch(/^closed since /);
    expect(describeReplyWindow({ closes_at: 0, replies_left: 0 }, T)).toBe('closed: the user has not written yet');
  });
});

describe('room for the window in inbound bodies', () => {
  test('every part of a long message still fits Vonage\'s 4096 bytes once the largest window is added', () => {
    const xml = `<xml><ToUserName>gh_1</ToUserName><FromUserName>oLong</FromUserName><CreateTime>1764676800</CreateTime><MsgType>text</MsgType><Content>${'长'.repeat(5000)}\u001f</Content><MsgId>24000000000000000001</MsgId></xml>`;
    const jobs = inboundJobs(readWeChatMessage(xml), { conversationId: 'CON-1' });
    expect(jobs.length).toBeGreaterThan(3);
    for (const job of jobs) {
      const { event } = job.payload;
      const stamped = { ...event.body, reply_window: { closes_at: 9_999_999_999, replies_left: 99_999 } };
      expect(Buffer.byteLength(JSON.stringify(stamped))).toBeLessThanOrEqual(4096);
    }
  });
});

describe('the tracker over the store', () => {
  let store: SqliteStore;
  let now = T;
  beforeEach(() => {
    now = T;
    store = SqliteStore.open(':memory:', { now: () => now });
  });
  afterEach(() => store.close());

  test('a job that runs again grants once; replies are counted; WeChat\'s 45015 closes it', async () => {
    const tracker = createReplyWindowTracker({ store, now: () => now, rules: { messageReplies: 2 } });
    await tracker.apply('default', 'oA', { kind: 'message', openedAt: T });
    await tracker.used('default', 'oA');
    await tracker.apply('default', 'oA', { kind: 'message', openedAt: T });
    expect(await tracker.current('default', 'oA')).toEqual({ closes_at: T / 1000 + 48 * 3600, replies_left: 1 });
    // Another account's user of the same openid is another window.
    expect(await tracker.current('second', 'oA')).toEqual({ closes_at: 0, replies_left: 0 });
    await tracker.close('default', 'oA');
    expect((await tracker.current('default', 'oA')).replies_left).toBe(0);
    // The user writes again: a new window.
    now = T + HOUR;
    await tracker.apply('default', 'oA', { kind: 'message', openedAt: T + HOUR });
    expect((await tracker.current('default', 'oA')).replies_left).toBe(2);
  });

  test('withReplyWindow applies the grant, then stamps the window on the event it hands on', async () => {
    const tracker = createReplyWindowTracker({ store, now: () => now });
    const posted: DeliverToVonagePayload[] = [];
    const deliver = withReplyWindow(async (job) => void posted.push(job.payload), tracker);
    const payload: DeliverToVonagePayload = {
      conversationId: 'CON-1',
      event: { type: 'custom:wechat:message', body: { from: 'oB', content: 'hi' } },
      replyWindow: { account: 'default', openid: 'oB', grant: { kind: 'message', openedAt: T } },
    };
    const job = { id: '1', kind: 'deliver-to-vonage', orderKey: 'wechat:oB', payload, attempts: 0, createdAt: T, lastError: undefined, leaseToken: 't', interrupted: false } satisfies JobOf<'deliver-to-vonage'>;
    await deliver(job);
    await deliver({ ...job, payload: { conversationId: 'CON-1', event: { type: 'custom:wechat:status', body: { status: 'delivered' } } } });
    expect(posted[0]!.event.body).toEqual({ from: 'oB', content: 'hi', reply_window: { closes_at: T / 1000 + 48 * 3600, replies_left: 5 } });
    expect(posted[1]!.event.body).toEqual({ status: 'delivered' });
  });
});
