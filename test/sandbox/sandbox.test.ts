/**
 * The sandbox in this process, without a browser: the production bridge between the two emulators,
 * driven the way the console drives it (the WeChat user's actions, a Vonage client with a user token
 * through /sandbox/vonage), and production left untouched (`/` is 404 without the sandbox).
 */
import { startHarness } from '../support/bridge-harness';
import { startSandbox, type Sandbox } from '../../src/sandbox/sandbox';
import { createLogger } from '../../src/logger';
import { waitFor } from '../support/wait';

/** The parts of the console's `/sandbox/api/state` these tests read. */
interface ConsoleState {
  account: unknown;
  accounts: Array<{ id: string }>;
  agent: unknown;
  users: Array<{ openid: string }>;
}

const silent = createLogger({ level: 'silent' });

describe('the sandbox', () => {
  let sandbox: Sandbox;
  let base: string;
  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, logger: silent });
    base = `http://127.0.0.1:${sandbox.port}`;
  });
  afterAll(() => sandbox.stop());

  test('serves the console at / with the bridge routes beside it', async () => {
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain('console.js');
    expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org)/); // no CDN
    expect((await fetch(`${base}/console.js`)).status).toBe(200);
    expect(await (await fetch(`${base}/healthz`)).text()).toBe('ok');
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/no-such-page`)).status).toBe(404);
    const state = (await (await fetch(`${base}/sandbox/api/state`)).json()) as ConsoleState;
    expect(state.users).toHaveLength(1);
    expect(state.users[0]).toMatchObject({ nickname: 'Li Wei', following: true });
    expect(state.agent).toEqual(sandbox.agent);
    expect(sandbox.url).toBe(`http://localhost:${sandbox.port}/`);
  });

  test('a WeChat message reaches that user\'s own conversation; an agent reply with a user token reaches the phone, with a delivered status', async () => {
    const [user] = sandbox.weChat.users();
    const result = await sandbox.weChat.sendText(user!.openid, 'Where is my parcel?');
    expect(result.deliveries.map((d) => [d.status, d.body])).toEqual([[200, 'success']]);

    // Per-user mode: the bridge made the conversation `wechat:<openid>` on first contact (the follow at start).
    const conversationId = await waitFor('the user\'s conversation', () => sandbox.conversationOf(user!.openid));
    const inbound = await waitFor('the inbound event', () =>
      sandbox.vonage.conversationEvents(conversationId).find((e) => e.body.content === 'Where is my parcel?'),
    );
    expect(inbound.body).toMatchObject({ direction: 'inbound', from: user!.openid, msg_id: result.msgId });
    expect(inbound._embedded?.from_user.name).toBe(`wechat-${user!.openid}`);
    // Vonage echoes the bridge's own event to /rtcEvent, signed; the bridge answers 200 and sends nothing.
    await sandbox.vonage.waitForDispatches((all) => all.some((d) => d.eventId === inbound.id && d.outcome === 'delivered'));

    // The agent pane's calls: a user token from the sandbox, then the Conversation API through the proxy:
    // join the user's conversation, then reply without `to` (the conversation names the user).
    const { token } = (await (await fetch(`${base}/sandbox/api/agent/token`, { method: 'POST' })).json()) as { token: string };
    const api = `${base}/sandbox/vonage/v1/conversations/${encodeURIComponent(conversationId)}`;
    const joined = await fetch(`${api}/members`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ state: 'joined', user: { name: sandbox.agent.name }, channel: { type: 'app' } }),
    });
    const mine = (await joined.json()) as { id: string };
    const posted = await fetch(`${api}/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'custom:wechat:message', from: mine.id, body: { direction: 'outbound', content: 'On its way!' } }),
    });
    expect(posted.status).toBe(201);
    const reply = (await posted.json()) as { id: number };

    await waitFor('the reply on the phone', () => sandbox.weChat.chat(user!.openid).find((c) => c.from === 'account' && c.text === 'On its way!'));
    const status = await waitFor('the status event', () =>
      sandbox.vonage.conversationEvents(conversationId).find((e) => e.type === 'custom:wechat:status' && e.body.ref_event_id === String(reply.id)),
    );
    // The user followed (3 replies) and wrote (5): one used.
    expect(status.body).toEqual({
      status: 'delivered',
      ref_event_id: String(reply.id),
      to: user!.openid,
      reply_window: { closes_at: expect.any(Number), replies_left: 7 },
    });

    const channels = new Set(sandbox.traffic.recent().map((t) => t.channel));
    expect(channels).toEqual(new Set(['wechat-push', 'wechat-api', 'vonage-api', 'vonage-webhook']));
    expect(JSON.stringify(sandbox.traffic.recent())).not.toMatch(/access_token=(?!\[redacted\])/);
  });

  test('the stream sends changes as Server-Sent Events', async () => {
    const controller = new AbortController();
    const response = await fetch(`${base}/sandbox/api/stream`, { signal: controller.signal });
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const reader = response.body!.getReader();
    await fetch(`${base}/sandbox/api/wechat/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"nickname":"Wu Tao"}' });
    let text = '';
    while (!text.includes('Wu Tao')) text += new TextDecoder().decode((await reader.read()).value as Uint8Array | undefined);
    expect(text).toMatch(/event: wechat\ndata: \{"type":"user"/);
    controller.abort();
  });

  test('a user\'s image carries a media_url at the sandbox\'s own address, which serves the file', async () => {
    const [user] = sandbox.weChat.users();
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');
    await sandbox.weChat.sendImage(user!.openid, { bytes: png, contentType: 'image/png' });
    const conversationId = await waitFor('the user\'s conversation', () => sandbox.conversationOf(user!.openid));
    const image = await waitFor('the image event', () => sandbox.vonage.conversationEvents(conversationId).find((e) => e.body.msg_type === 'image'));
    const mediaUrl = String(image.body.media_url);
    expect(mediaUrl.startsWith(`http://localhost:${sandbox.port}/media/`)).toBe(true);
    const file = await fetch(mediaUrl.replace('localhost', '127.0.0.1'));
    expect(file.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await file.arrayBuffer()).equals(png)).toBe(true);
  });

  test('the agent can send an image: uploaded to WeChat with media/upload, sent by media_id', async () => {
    const png = `data:image/png;base64,${Buffer.from('89504e470d0a1a0a', 'hex').toString('base64')}`;
    const upload = await fetch(`${base}/sandbox/api/agent/media`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ dataUrl: png }),
    });
    const { media_id: mediaId } = (await upload.json()) as { media_id: string };
    expect(sandbox.weChat.media(mediaId)?.contentType).toBe('image/png');
    expect(sandbox.traffic.recent().some((t) => t.caller === 'sandbox console' && t.path.startsWith('/cgi-bin/media/upload'))).toBe(true);
    const served = await fetch(`${base}/sandbox/api/wechat/media/${mediaId}`);
    expect(served.headers.get('content-type')).toBe('image/png');
  });

  test('the second Official Account: the console picks it with ?account=, its user reaches a conversation of that account, and the reply goes back through its own token', async () => {
    const second = sandbox.accounts.find((a) => a.id === 'second')!.weChat;
    const state = (await (await fetch(`${base}/sandbox/api/state?account=second`)).json()) as ConsoleState;
    expect(state.account).toMatchObject({ configuredId: 'second', id: second.accountId });
    expect(state.accounts.map((a) => a.id)).toEqual(['default', 'second']);
    const [user] = state.users;
    expect(second.user(user!.openid)).toBeDefined();
    expect(sandbox.weChat.user(user!.openid)).toBeUndefined();
    expect((await fetch(`${base}/sandbox/api/state?account=nope`)).status).toBe(404);

    const sent = await fetch(`${base}/sandbox/api/wechat/users/${encodeURIComponent(user!.openid)}/messages?account=second`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'text', content: 'Hello from the second account' }),
    });
    expect(sent.status).toBe(202);
    const conversationId = await waitFor('the conversation', () => sandbox.vonage.conversations().find((c) => c.name === `wechat:second:${user!.openid}`)?.id);
    const inbound = await waitFor('the inbound event', () =>
      sandbox.vonage.conversationEvents(conversationId).find((e) => e.body.content === 'Hello from the second account'),
    );
    expect(inbound.body).toMatchObject({ account: 'second', to: second.accountId });

    const { token } = (await (await fetch(`${base}/sandbox/api/agent/token`, { method: 'POST' })).json()) as { token: string };
    const api = `${base}/sandbox/vonage/v1/conversations/${encodeURIComponent(conversationId)}`;
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const joined = (await (await fetch(`${api}/members`, { method: 'POST', headers, body: JSON.stringify({ state: 'joined', user: { name: sandbox.agent.name }, channel: { type: 'app' } }) })).json()) as { id: string };
    const posted = await fetch(`${api}/events`, { method: 'POST', headers, body: JSON.stringify({ type: 'custom:wechat:message', from: joined.id, body: { direction: 'outbound', content: 'Hi from agent' } }) });
    expect(posted.status).toBe(201);
    await waitFor('the reply on the second phone', () => second.chat(user!.openid).find((c) => c.from === 'account' && c.text === 'Hi from agent'));
    expect(second.sent.every((s) => second.issuedTokens.includes(s.accessToken))).toBe(true);
    expect(sandbox.weChat.sent.some((s) => (s.json as { touser?: string }).touser === user!.openid)).toBe(false);
  });
});

test('without the sandbox, / and /sandbox/* are 404 (production is unchanged)', async () => {
  const harness = await startHarness();
  try {
    for (const path of ['/', '/index.html', '/console.js', '/sandbox/api/state']) {
      const response = await fetch(`${harness.baseUrl}${path}`);
      expect(response.status).toBe(404);
      expect(await response.text()).toBe('not found');
    }
  } finally {
    await harness.close();
  }
});

describe('the console API: faults and the instance id', () => {
  let sandbox: Sandbox;
  let base: string;
  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, logger: silent });
    base = `http://127.0.0.1:${sandbox.port}`;
  });
  afterAll(() => sandbox.stop());
  const setFault = (fault: unknown) =>
    fetch(`${base}/sandbox/api/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ fault }) });

  test('a fault makes the emulator answer with it until it is reset; unknown faults are refused', async () => {
    expect((await setFault('everything')).status).toBe(400);
    const started = (await (await setFault('vonage-503')).json()) as { faults: Array<{ fault: string; until: number }> };
    expect(started.faults).toEqual([expect.objectContaining({ fault: 'vonage-503', until: expect.any(Number) })]);
    // Any Conversation API client now gets 503, before its credentials are even looked at.
    expect((await fetch(`${sandbox.vonage.baseUrl}/conversations`)).status).toBe(503);
    expect((await fetch(`${sandbox.vonage.baseUrl}/conversations`)).status).toBe(503);
    // One fault per emulator: switching replaces it.
    const switched = (await (await setFault('wechat-busy')).json()) as { faults: Array<{ fault: string }> };
    expect(switched.faults.map((f) => f.fault)).toEqual(['vonage-503', 'wechat-busy']);
    const reset = (await (await setFault('none')).json()) as { faults: unknown[] };
    expect(reset.faults).toEqual([]);
    expect((await fetch(`${sandbox.vonage.baseUrl}/conversations`)).status).toBe(401);
    const state = (await (await fetch(`${base}/sandbox/api/state`)).json()) as { faults: unknown[] };
    expect(state.faults).toEqual([]);
  });

  test('each start has its own instance id, in the state and first on the event stream', async () => {
    const other = await startSandbox({ port: 0, logger: silent });
    try {
      const ids = await Promise.all(
        [base, `http://127.0.0.1:${other.port}`].map(async (origin) => ((await (await fetch(`${origin}/sandbox/api/state`)).json()) as { instanceId: string }).instanceId),
      );
      expect(ids[0]).toMatch(/^[0-9a-f-]{36}$/);
      expect(ids[1]).not.toBe(ids[0]);
      const controller = new AbortController();
      const stream = await fetch(`${base}/sandbox/api/stream`, { signal: controller.signal });
      const reader = stream.body!.getReader();
      let text = '';
      while (!text.includes('event: hello')) text += new TextDecoder().decode((await reader.read()).value as Uint8Array | undefined);
      controller.abort();
      expect(text).toContain(`event: hello\ndata: {"instanceId":"${ids[0]}"}`);
    } finally {
      await other.stop();
    }
  });
});
