import { planOutbound } from '../../../../src/bridge/to-wechat/plan-outbound';
import { parseRtcEvent } from '../../../../src/vonage/webhook';

const CONV = 'CON-63f61863-4a51-4f6b-86e1-46edebio0391';
const event = (type: string, body: Record<string, unknown>, id: number | string = 42) =>
  parseRtcEvent({ type, body, id, conversation_id: CONV, application_id: 'app', timestamp: '2026-11-21T12:00:00.000Z' });

describe('planOutbound', () => {
  test('an outbound message becomes a send-to-wechat job in the user\'s queue, once per event', () => {
    const body = { direction: 'outbound', to: 'oUser1', content: 'hi', msg_type: 'text' };
    expect(planOutbound(event('custom:wechat:message', body))).toEqual({
      kind: 'send-to-wechat',
      // The same order key as the inbound path: one user's traffic keeps its order.
      orderKey: 'wechat:oUser1',
      payload: { conversationId: CONV, eventId: '42', body },
      dedupKey: `rtc:${CONV}:42`,
    });
  });

  test('a typing event becomes a send-typing-to-wechat job, with or without direction', () => {
    expect(planOutbound(event('custom:wechat:typing', { to: 'oUser1', command: 'Typing' }))).toMatchObject({
      kind: 'send-typing-to-wechat',
      orderKey: 'wechat:oUser1',
      dedupKey: `rtc:${CONV}:42`,
    });
    expect(planOutbound(event('custom:wechat:typing', { direction: 'outbound', to: 'o', command: 'CancelTyping' }))?.kind).toBe(
      'send-typing-to-wechat',
    );
  });

  test('an outbound message without `to` still gets a job (its run reports the failure), queued by conversation', () => {
    expect(planOutbound(event('custom:wechat:message', { direction: 'outbound', content: 'hi' }))).toMatchObject({
      kind: 'send-to-wechat',
      orderKey: `conversation:${CONV}`,
    });
  });

  test.each([
    ['our own inbound event echoed back', 'custom:wechat:message', { direction: 'inbound', from: 'oUser1', content: 'hi' }],
    ['a message without direction', 'custom:wechat:message', { to: 'oUser1', content: 'hi' }],
    ['a message with another direction', 'custom:wechat:message', { direction: 'OUTBOUND', to: 'oUser1', content: 'hi' }],
    ['our own status event echoed back', 'custom:wechat:status', { status: 'delivered', ref_event_id: '1', to: 'oUser1' }],
    ['an inbound typing event', 'custom:wechat:typing', { direction: 'inbound', to: 'oUser1', command: 'Typing' }],
    ['another custom event', 'custom:other', { direction: 'outbound', to: 'oUser1' }],
    ['member:joined', 'member:joined', {}],
    ['message', 'message', { message_type: 'text', text: 'hi' }],
    ['rtc:status', 'rtc:status', {}],
    ['audio:dtmf', 'audio:dtmf', {}],
  ])('ignores %s', (_name, type, body) => {
    expect(planOutbound(event(type, body))).toBeUndefined();
  });
});

describe('planOutbound in per-user mode', () => {
  const event = (body: Record<string, unknown>, id = 7) =>
    parseRtcEvent({ type: 'custom:wechat:message', body, id, conversation_id: 'CON-9', application_id: 'app', timestamp: '2026-11-21T12:00:00.000Z' });

  test('every outbound event of a conversation shares its queue, with or without `to`', () => {
    const options = { perUserConversations: true };
    expect(planOutbound(event({ direction: 'outbound', content: 'a' }), options)?.orderKey).toBe('conversation:CON-9');
    expect(planOutbound(event({ direction: 'outbound', to: 'oUser', content: 'b' }), options)?.orderKey).toBe('conversation:CON-9');
    // Fixed mode is unchanged: the user's queue.
    expect(planOutbound(event({ direction: 'outbound', to: 'oUser', content: 'b' }))?.orderKey).toBe('wechat:oUser');
  });
});
