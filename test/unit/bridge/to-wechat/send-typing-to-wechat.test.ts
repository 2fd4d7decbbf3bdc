import { createSendTypingToWeChatHandler } from '../../../../src/bridge/to-wechat/send-typing-to-wechat';
import { RetryableError } from '../../../../src/errors';
import type { JobOf } from '../../../../src/bridge/jobs';
import { createLogger } from '../../../../src/logger';
import { WeChatApiError } from '../../../../src/wechat/transport';
import { captureLogs } from '../../../support/bridge-harness';

const job = (body: Record<string, unknown>): JobOf<'send-typing-to-wechat'> => ({
  id: '1',
  kind: 'send-typing-to-wechat',
  orderKey: 'wechat:oUser',
  payload: { conversationId: 'CON-1', eventId: '9', body },
  attempts: 0,
  createdAt: 0,
  lastError: undefined,
  leaseToken: 'lease-1',
  interrupted: false,
});

function setup(fail?: Error) {
  const sent: Array<Record<string, unknown>> = [];
  const { lines, destination } = captureLogs();
  const handler = createSendTypingToWeChatHandler({
    weChat: {
      async sendTyping(body) {
        sent.push(body);
        if (fail) throw fail;
      },
    },
    logger: createLogger({ level: 'debug', destination }),
  });
  return { sent, lines, handler };
}

describe('send-typing-to-wechat', () => {
  test.each(['Typing', 'CancelTyping'])('%s goes to WeChat as {touser, command}', async (command) => {
    const s = setup();
    await s.handler(job({ to: 'oUser', command }));
    expect(s.sent).toEqual([{ touser: 'oUser', command }]);
  });

  test.each([
    ['an unknown command', { to: 'oUser', command: 'Dance' }],
    ['no command', { to: 'oUser' }],
    ['no `to`', { command: 'Typing' }],
  ])('%s is logged and dropped without calling WeChat', async (_name, body) => {
    const s = setup();
    await expect(s.handler(job(body))).resolves.toBeUndefined();
    expect(s.sent).toHaveLength(0);
    expect(s.lines.join('')).toMatch(/typing event ignored/);
  });

  test.each([
    ['a retryable failure', new RetryableError('WeChat custom/typing: -1 system error')],
    ['a refusal', new WeChatApiError(45080, 'no interaction')],
  ])('%s is logged, not retried (the job ends normally)', async (_name, error) => {
    const s = setup(error);
    await expect(s.handler(job({ to: 'oUser', command: 'Typing' }))).resolves.toBeUndefined();
    expect(s.lines.join('')).toMatch(/typing indicator not shown/);
  });
});
