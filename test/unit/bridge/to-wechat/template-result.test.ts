/** The `report-template-result` job over a real SQLite store in memory. */
import { RetryableError } from '../../../../src/errors';
import { createLogger } from '../../../../src/logger';
import type { JobOf, TemplateResultPayload } from '../../../../src/bridge/jobs';
import { createReportTemplateResultHandler, templateResultJob, templateSendKey } from '../../../../src/bridge/to-wechat/template-result';
import { readWeChatMessage } from '../../../../src/wechat/message';
import { SqliteStore } from '../../../../src/store/sqlite/store';

const T = Date.UTC(2026, 11, 2, 12, 0, 0);

describe('templateResultJob', () => {
  const push = (event: string) =>
    readWeChatMessage(
      `<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oA]]></FromUserName><CreateTime>1764676800</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[${event}]]></Event><MsgID>24000000000000000077</MsgID><Status><![CDATA[success]]></Status></xml>`,
    );

  test('a TEMPLATESENDJOBFINISH push gets a job in a queue of its own, first run shortly after it arrived', () => {
    expect(templateResultJob(push('TEMPLATESENDJOBFINISH'), T)).toEqual({
      kind: 'report-template-result',
      orderKey: 'wechat-template-result:oA',
      payload: { account: 'default', msgId: '24000000000000000077', result: 'success', openid: 'oA' },
      dedupKey: expect.any(String),
      runAt: T + 2_000,
    });
    expect(templateResultJob(push('MASSSENDJOBFINISH'), T)).toBeUndefined();
  });
});

describe('report-template-result', () => {
  let store: SqliteStore;
  let now = T;
  const job = (payload: TemplateResultPayload, createdAt = T): JobOf<'report-template-result'> => ({
    id: '1', kind: 'report-template-result', orderKey: 'wechat-status:oA', payload, attempts: 0, createdAt, lastError: undefined, leaseToken: 't', interrupted: false,
  });
  const statuses = async () => (await store.claim({ limit: 10, leaseMs: 1_000 })).map((claimed) => claimed.payload);

  beforeEach(async () => {
    now = T;
    store = SqliteStore.open(':memory:', { now: () => now });
    await store.rememberValue(templateSendKey('default', '77'), { conversationId: 'CON-1', eventId: 'EV-9', to: 'oA' }, T + 60_000);
  });
  afterEach(() => store.close());

  const handler = () => createReportTemplateResultHandler({ store, logger: createLogger({ level: 'silent' }), now: () => now });

  test('the result becomes one status for the outbound event, however often it is pushed', async () => {
    const result = { account: 'default', msgId: '77', result: 'failed:user block', openid: 'oA' };
    await handler()(job(result));
    await handler()(job(result));
    expect(await statuses()).toEqual([
      {
        conversationId: 'CON-1',
        event: {
          type: 'custom:wechat:status',
          body: expect.objectContaining({ status: 'failed', ref_event_id: 'EV-9', to: 'oA', msg_id: '77', error_code: 'user_block' }),
        },
      },
    ]);
  });

  test('a push naming another user is ignored; an unknown msgid is looked up again for 30 s, then ignored', async () => {
    await handler()(job({ account: 'default', msgId: '77', result: 'success', openid: 'oSomeoneElse' }));
    const unknown = { account: 'default', msgId: '78', result: 'success', openid: 'oA' };
    await expect(handler()(job(unknown))).rejects.toThrow(RetryableError);
    now = T + 30_000;
    await expect(handler()(job(unknown))).resolves.toBeUndefined();
    expect(await statuses()).toEqual([]);
  });
});
