/**
 * The webhook's passive answer over real HTTP, with the real mailbox on a real store: a reply
 * waiting is the answer, and its delivered status is stored even when the store refuses it once.
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createPassiveReplies } from '../../../src/bridge/to-wechat/passive-replies';
import { createPassiveAnswerer } from '../../../src/http/passive-answer';
import { createLogger } from '../../../src/logger';
import { SqliteStore } from '../../../src/store/sqlite/store';
import type { Job, NewJob } from '../../../src/store/store';
import { parseWeChatMessage } from '../../../src/wechat/message';
import { parseWeChatXml } from '../../../src/wechat/xml';
import { sleep } from '../../support/wait';

const logger = createLogger({ level: 'silent' });
const PUSH =
  '<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName>' +
  '<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>1</MsgId></xml>';

test('a waiting reply answers the push; its delivered status survives a store refusal', async () => {
  const store = SqliteStore.open(':memory:');
  let refuseStatuses = 1;
  const flaky: SqliteStore = Object.create(store, {
    enqueue: {
      value: async (jobs: NewJob[]) => {
        if (jobs[0]?.kind === 'deliver-to-vonage' && refuseStatuses-- > 0) throw new Error('database is locked');
        return store.enqueue(jobs);
      },
    },
  });
  const replies = createPassiveReplies({ store: flaky, logger, mode: 'passive', replyTtlMs: 60_000 });
  const answerer = createPassiveAnswerer({
    replies,
    store,
    logger,
    weChat: { token: 't', appId: 'wx1', aesKeys: [] },
    holdingText: undefined,
    now: Date.now,
  });
  const app = express();
  app.post('/push', express.text({ type: () => true }), async (req, res) => {
    await answerer.answer(req, res, parseWeChatMessage(parseWeChatXml(req.body as string)), false);
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  try {
    await replies.deposit('oUser', { conversationId: 'CON-1', eventId: '5', body: { direction: 'outbound', to: 'oUser', content: 'answer' } });
    const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/push`, { method: 'POST', body: PUSH });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/xml/);
    const answer = parseWeChatXml(await response.text());
    expect(answer).toMatchObject({ ToUserName: 'oUser', FromUserName: 'gh_account', MsgType: 'text', Content: 'answer' });

    // The first try to store it was refused; the answerer tries again.
    let status: Job | undefined;
    for (const deadline = Date.now() + 5_000; status === undefined; await sleep(20)) {
      [status] = await store.claim({ limit: 1, leaseMs: 60_000, kinds: ['deliver-to-vonage'] });
      if (status === undefined && Date.now() > deadline) throw new Error('no delivered status');
    }
    expect((status.payload as { event: { body: unknown } }).event.body).toMatchObject({ status: 'delivered', via: 'passive', ref_event_id: '5' });
  } finally {
    server.close();
    await store.close();
  }
});
