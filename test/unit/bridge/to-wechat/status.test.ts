import type { OutboundEventPayload } from '../../../../src/bridge/jobs';
import { statusJob } from '../../../../src/bridge/to-wechat/status';

const CONV = 'CON-63f61863-4a51-4f6b-86e1-46edebio0391';

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
