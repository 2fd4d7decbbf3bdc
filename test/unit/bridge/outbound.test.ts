import { planOutbound, statusJob } from '../../../src/bridge/outbound';
import type { OutboundEventPayload } from '../../../src/bridge/ports';
import { parseRtcEvent } from '../../../src/vonage/webhook';

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

describe('statusJob', () => {
  const payload: OutboundEventPayload = { conversationId: CONV, eventId: '42', body: { direction: 'outbound', to: 'oUser1', content: 'hi' } };

  test('delivered: the contract\'s body, to the same conversation, unique per outbound event', () => {
    expect(statusJob(payload, { status: 'delivered' })).toEqual({
      kind: 'deliver-to-vonage',
      orderKey: 'wechat-status:oUser1',
      payload: { conversationId: CONV, event: { type: 'custom:wechat:status', body: { status: 'delivered', ref_event_id: '42', to: 'oUser1' } } },
      dedupKey: `status:${CONV}:42`,
    });
  });

  test('failed: with error_code and error_message; a long message is clipped', () => {
    const job = statusJob(payload, { status: 'failed', errorCode: '45015', errorMessage: 'x'.repeat(5000) });
    const body = (job.payload as { event: { body: Record<string, unknown> } }).event.body;
    expect(body).toMatchObject({ status: 'failed', ref_event_id: '42', to: 'oUser1', error_code: '45015' });
    expect((body.error_message as string).length).toBeLessThanOrEqual(1000);
    expect(Buffer.byteLength(JSON.stringify(body))).toBeLessThan(4096);
  });

  test('without `to`: an empty `to`, queued by conversation', () => {
    const job = statusJob({ ...payload, body: { direction: 'outbound' } }, { status: 'failed', errorCode: 'missing_to', errorMessage: 'm' });
    expect(job.orderKey).toBe(`conversation-status:${CONV}`);
    expect((job.payload as { event: { body: Record<string, unknown> } }).event.body.to).toBe('');
  });

  test('per-user mode: the resolved recipient is the status\'s `to` when the event did not name it', () => {
    const job = statusJob({ ...payload, body: { direction: 'outbound', content: 'hi' } }, { status: 'delivered' }, 'oUser2');
    expect((job.payload as { event: { body: Record<string, unknown> } }).event.body.to).toBe('oUser2');
    expect(job.orderKey).toBe('wechat-status:oUser2');
  });
});
