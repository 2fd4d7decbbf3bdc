/**
 * The console in a real browser: Debian's Chromium driven by playwright-core (no browser download;
 * .ci/run installs `chromium` with apt-get). A WeChat user writes, the agent sees it in that user's
 * own conversation (per-user mode), sees the user's picture through the bridge's media link, and
 * replies; the phone shows the reply and the agent sees "delivered"; then WeChat's clock jumps past
 * the 48-hour window and the agent sees the 45015 failure, the window closed, and sends a template
 * message instead. A screenshot is kept in test-artifacts/.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { createLogger } from '../../src/logger';
import { startSandbox, type Sandbox } from '../../src/sandbox/sandbox';
import { waitFor } from '../support/wait';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ONE_PIXEL_PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');
const ARTIFACTS = path.join(__dirname, '..', '..', 'test-artifacts');

/** A solid-colour RGB PNG of the given size: big enough to change a chat's height when it loads. */
function solidPng(width: number, height: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes: Buffer) => {
    let c = 0xffffffff;
    for (const byte of bytes) c = crcTable[(c ^ byte) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([length, body, sum]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const row = Buffer.concat([Buffer.from([0]), Buffer.alloc(width * 3, 0x3c)]);
  const pixels = deflateSync(Buffer.concat(Array.from({ length: height }, () => row)));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header), chunk('IDAT', pixels), chunk('IEND', Buffer.alloc(0))]);
}

/** Whether a scrolling list shows its newest row (scrolled to the bottom). */
const atBottom = (page: Page, selector: string) =>
  page.$eval(selector, (node) => {
    const list = node as unknown as { scrollHeight: number; scrollTop: number; clientHeight: number };
    return list.scrollHeight - list.scrollTop - list.clientHeight < 4;
  });

describe('the sandbox console in Chromium', () => {
  let sandbox: Sandbox | undefined;
  let context: BrowserContext | undefined;
  let profile: string | undefined;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's package (apt-get install -y chromium), as .ci/run does`);
    }
    sandbox = await startSandbox({ port: 0, logger: createLogger({ level: 'silent' }) });
    profile = mkdtempSync(path.join(tmpdir(), 'sandbox-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1440, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (error) => pageErrors.push(error.message));
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await sandbox?.stop();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  test('WeChat → agent → reply → delivered, then the 48-hour window failure', async () => {
    await page.goto(`http://127.0.0.1:${sandbox!.port}/`);
    await page.waitForSelector('body[data-ready="true"]');
    await page.locator('#live[data-state="live"]').waitFor();

    // The WeChat pane: the seeded user writes.
    await page.fill('#phone-input', 'Hello, is my order on its way?');
    await page.click('#phone-send');
    const sent = page.locator('#phone-chat .row.mine', { hasText: 'Hello, is my order on its way?' });
    await sent.locator('.meta', { hasText: 'delivered' }).waitFor();

    // The agent pane: the message arrived in that user's own conversation (per-user mode), which
    // the pane opened; the reply goes to the conversation's user.
    await page.locator('#agent-messages .row.theirs', { hasText: 'Hello, is my order on its way?' }).waitFor();
    const openid = sandbox!.weChat.users()[0]!.openid;
    expect(await page.locator('#conversation-head').textContent()).toContain(`Li Wei · WeChat · ${sandbox!.conversationOf(openid)}`);
    await page.locator('#conversation-list button.selected', { hasText: 'Li Wei' }).waitFor();
    expect(await page.inputValue('#agent-to')).toBe(openid);
    expect(await page.locator('#agent-to option:checked').textContent()).toContain('Li Wei');

    // A picture from the phone shows in the agent pane through the bridge's signed media link.
    await page.setInputFiles('#phone-image-file', { name: 'dot.png', mimeType: 'image/png', buffer: ONE_PIXEL_PNG });
    const picture = page.locator('#agent-messages .row.theirs img[src^="/media/"]');
    await picture.waitFor();
    // Decoded: the browser got a real PNG (one pixel wide), not an error page.
    await picture.evaluate((img) => (img as unknown as { decode(): Promise<void> }).decode());
    expect(await picture.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth)).toBe(1);
    await page.fill('#agent-input', 'Yes, it left the warehouse this morning.');
    await page.click('#agent-send');

    // Back on the phone: the reply; in the agent pane: "delivered".
    await page.locator('#phone-chat .row.theirs', { hasText: 'Yes, it left the warehouse this morning.' }).waitFor();
    const reply = page.locator('#agent-messages .row.mine', { hasText: 'Yes, it left the warehouse this morning.' });
    await reply.locator('.meta', { hasText: 'delivered' }).waitFor();
    // The agent sees the window the bridge reports: 48 hours from the user's message, replies counted.
    await page.locator('#agent-window:not(.closed)', { hasText: /closes in 4[78] h · \d+ replies left/ }).waitFor();

    // The traffic panel shows the protocol: the XML WeChat pushed, the event posted to Vonage, the send to WeChat.
    await page.locator('#traffic li.wechat-push', { hasText: 'POST /weChatEvent' }).first().waitFor();
    await page.locator('#traffic li.vonage-api', { hasText: '/events' }).first().waitFor();
    await page.locator('#traffic li.wechat-api', { hasText: '/cgi-bin/message/custom/send' }).first().waitFor();

    // 49 hours later on WeChat's clock the window is closed: the agent sees 45015.
    await page.click('#skip-time');
    await page.locator('#clock', { hasText: '+49 h' }).waitFor();
    await page.fill('#agent-input', 'Anything else I can help with?');
    await page.click('#agent-send');
    const late = page.locator('#agent-messages .row.mine', { hasText: 'Anything else I can help with?' });
    await late.locator('.meta.bad', { hasText: '45015' }).waitFor();
    await page.locator('#window-info.closed').waitFor();

    // The 45015 told the bridge the window is closed: the agent pane offers the emulator's templates.
    await page.locator('#agent-window.closed', { hasText: 'only template messages' }).waitFor();
    await page.selectOption('#agent-template', { label: 'Order update' });
    await page.fill('#agent-input', 'Shipped');
    await page.click('#agent-send-template');
    const template = page.locator('#phone-chat .row.theirs', { hasText: '[template] Order update · Order number:' });
    await template.locator('.meta', { hasText: 'via template/send' }).waitFor();
    await page.locator('#agent-messages .row.mine', { hasText: '[template] Order update' }).locator('.meta.ok', { hasText: 'delivered' }).waitFor();

    // The user allows a notification; the agent sends one (subscribe/bizsend), once.
    await page.click('#phone-subscribe');
    await page.locator('#phone-chat .row.system', { hasText: 'You allowed notifications: Appointment reminder' }).waitFor();
    await page.selectOption('#agent-template', { label: 'Appointment reminder (notification)' });
    await page.fill('#agent-input', 'Haircut');
    await page.click('#agent-send-template');
    await page.locator('#phone-chat .row.theirs', { hasText: '[notification] Appointment reminder · Service: Haircut' }).locator('.meta', { hasText: 'via subscribe/bizsend' }).waitFor();
    await page.locator('#agent-messages .row.mine', { hasText: '[subscribe] Appointment reminder' }).locator('.meta.ok', { hasText: 'delivered' }).waitFor();

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'sandbox-console.png') });
    expect(pageErrors).toEqual([]);
  }, 60_000);

  test('the chats keep following the newest row after a picture loads', async () => {
    for (let i = 1; i <= 6; i += 1) {
      await page.fill('#phone-input', `Filler message ${i}`);
      await page.click('#phone-send');
      await page.locator('#phone-chat .row.mine', { hasText: `Filler message ${i}` }).locator('.meta', { hasText: 'delivered' }).waitFor();
    }
    await page.setInputFiles('#phone-image-file', { name: 'big.png', mimeType: 'image/png', buffer: solidPng(400, 300) });
    const pictures = page.locator('#agent-messages .row.theirs img[src^="/media/"]');
    await pictures.nth(1).waitFor();
    await pictures.nth(1).evaluate((img) => (img as unknown as { decode(): Promise<void> }).decode());
    await page.fill('#phone-input', 'After the picture');
    await page.click('#phone-send');
    await page.locator('#phone-chat .row.mine', { hasText: 'After the picture' }).locator('.meta', { hasText: 'delivered' }).waitFor();
    await page.locator('#agent-messages .row.theirs', { hasText: 'After the picture' }).waitFor();
    // Both lists overflow and still show their newest row, with its delivery line.
    for (const list of ['#phone-chat', '#agent-messages']) {
      expect(await page.$eval(list, (node) => (node as unknown as { scrollHeight: number; clientHeight: number }).scrollHeight > (node as unknown as { clientHeight: number }).clientHeight)).toBe(true);
      expect(await atBottom(page, list)).toBe(true);
    }
    await expect(page.locator('#phone-chat .row.mine', { hasText: 'After the picture' }).locator('.meta').isVisible()).resolves.toBe(true);
  }, 60_000);

  test('an action the server does not take is reported, and the menu keeps what the server uses', async () => {
    expect(sandbox!.weChat.pushMode).toBe('plain');
    await page.route('**/sandbox/api/wechat/push-mode', (route) => route.abort('connectionrefused'));
    try {
      await page.selectOption('#push-mode', 'safe');
      await page.locator('#notice', { hasText: 'Changing the push mode failed' }).waitFor();
      expect(await page.inputValue('#push-mode')).toBe('plain');
    } finally {
      await page.unroute('**/sandbox/api/wechat/push-mode');
    }
    expect(sandbox!.weChat.pushMode).toBe('plain');
    // The server answering a refusal is shown the same way.
    await page.route('**/sandbox/api/wechat/clock', (route) => route.fulfill({ status: 400, contentType: 'application/json', body: '{"error":"hours must be a positive number"}' }));
    try {
      await page.click('#skip-time');
      await page.locator('#notice', { hasText: 'hours must be a positive number' }).waitFor();
    } finally {
      await page.unroute('**/sandbox/api/wechat/clock');
    }
    expect(pageErrors).toEqual([]);
  }, 30_000);

  test('faults: Vonage 503 and WeChat -1 are retried, and delivered once the fault is reset', async () => {
    // Back inside the window: the user writes again (the earlier test skipped WeChat's clock).
    await page.selectOption('#fault', 'vonage-503');
    await page.locator('#fault-info', { hasText: 'Vonage answers 503' }).waitFor();
    await page.fill('#phone-input', 'Sent while Vonage is down');
    await page.click('#phone-send');
    // WeChat is answered at once (the message is stored); the post to Vonage gets 503.
    await page.locator('#phone-chat .row.mine', { hasText: 'Sent while Vonage is down' }).locator('.meta', { hasText: 'delivered' }).waitFor();
    await page.locator('#traffic li.vonage-api .status.bad', { hasText: '503' }).first().waitFor();
    expect(await page.locator('#agent-messages .row.theirs', { hasText: 'Sent while Vonage is down' }).count()).toBe(0);
    await page.selectOption('#fault', 'none');
    await page.locator('#fault-info').waitFor({ state: 'hidden' });
    await page.locator('#agent-messages .row.theirs', { hasText: 'Sent while Vonage is down' }).waitFor({ timeout: 25_000 });

    await page.selectOption('#fault', 'wechat-busy');
    await page.locator('#fault-info', { hasText: 'errcode -1' }).waitFor();
    await page.fill('#agent-input', 'Sent while WeChat is busy');
    await page.click('#agent-send');
    await page.locator('#traffic li.wechat-api', { hasText: '/cgi-bin/message/custom/send' }).locator('.status', { hasText: '-1' }).first().waitFor();
    await page.selectOption('#fault', 'none');
    await page.locator('#phone-chat .row.theirs', { hasText: 'Sent while WeChat is busy' }).waitFor({ timeout: 25_000 });
    await page
      .locator('#agent-messages .row.mine', { hasText: 'Sent while WeChat is busy' })
      .locator('.meta', { hasText: 'delivered' })
      .waitFor({ timeout: 25_000 });
    expect(pageErrors).toEqual([]);
  }, 90_000);

  test('a reply over Vonage\'s 4096-byte body limit is sent in parts and arrives whole', async () => {
    const long = '长'.repeat(2000); // 6,000 bytes of UTF-8
    await page.fill('#agent-input', long);
    await page.click('#agent-send');
    const parts = page.locator('#agent-messages .row.mine', { hasText: '长长长长' });
    await parts.nth(1).locator('.meta', { hasText: 'delivered' }).waitFor({ timeout: 20_000 });
    await parts.nth(0).locator('.meta', { hasText: 'delivered' }).waitFor();
    expect(await page.textContent('#agent-error')).toBe('');
    const phoneParts = page.locator('#phone-chat .row.theirs .bubble', { hasText: '长长长长' });
    await phoneParts.nth(1).waitFor();
    expect((await phoneParts.allTextContents()).join('')).toBe(long);
  }, 40_000);

  test('below 1,100 px wide every pane fits: the traffic moves under the chats', async () => {
    for (const width of [1000, 700]) {
      await page.setViewportSize({ width, height: 800 });
      const traffic = await page.locator('.traffic-pane').boundingBox();
      expect(traffic).not.toBeNull();
      expect(traffic!.x).toBeGreaterThanOrEqual(0);
      expect(traffic!.x + traffic!.width).toBeLessThanOrEqual(width);
      for (const pane of ['.phone-pane', '.agent-pane']) {
        const box = (await page.locator(pane).boundingBox())!;
        expect(box.x + box.width).toBeLessThanOrEqual(width);
      }
      expect(await page.evaluate(() => (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } }).document.documentElement.scrollWidth)).toBeLessThanOrEqual(width);
      await page.screenshot({ path: path.join(ARTIFACTS, `sandbox-console-${width}px.png`), fullPage: true });
    }
    await page.setViewportSize({ width: 1440, height: 900 });
  }, 30_000);

  test('the account picker in the phone pane switches to the second Official Account, whose user then writes to it', async () => {
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.goto(`http://127.0.0.1:${sandbox!.port}/`);
    await page.waitForSelector('body[data-ready="true"]');
    const second = sandbox!.accounts.find((a) => a.id === 'second')!.weChat;
    expect(await page.locator('#account-select option').allTextContents()).toEqual([
      `Sandbox Official Account (${sandbox!.weChat.accountId})`,
      `Second Official Account (${second.accountId})`,
    ]);
    await page.selectOption('#account-select', 'second');
    await page.locator('.phone-title', { hasText: 'Second Official Account' }).waitFor();
    expect(await page.locator('#user-select option:checked').textContent()).toContain('Zhang Min');

    await page.fill('#phone-input', 'A question for the second account');
    await page.click('#phone-send');
    await page.locator('#phone-chat .row.mine', { hasText: 'A question for the second account' }).locator('.meta', { hasText: 'delivered' }).waitFor();
    const [user] = second.users();
    expect(second.chat(user!.openid).some((c) => c.text === 'A question for the second account')).toBe(true);
    await waitFor('the second account\'s conversation', () => sandbox!.vonage.conversations().find((c) => c.name === `wechat:second:${user!.openid}`));

    // Back to the first account: its own user and chat.
    await page.selectOption('#account-select', 'default');
    await page.locator('.phone-title', { hasText: 'Sandbox Official Account' }).waitFor();
    expect(await page.locator('#user-select option:checked').textContent()).toContain('Li Wei');
    expect(pageErrors).toEqual([]);
  }, 60_000);

  test('a restarted sandbox: the page says it is not answering, then reloads itself', async () => {
    const port = sandbox!.port;
    await page.evaluate(() => {
      (globalThis as unknown as { beforeRestart: boolean }).beforeRestart = true;
    });
    await sandbox!.stop();
    sandbox = undefined;
    await page.locator('#live[data-state="down"]').waitFor();
    sandbox = await startSandbox({ port, logger: createLogger({ level: 'silent' }) });
    // A new page load (the marker is gone), showing the new sandbox's state.
    await page.waitForFunction(
      () => !(globalThis as unknown as { beforeRestart?: boolean }).beforeRestart && (globalThis as unknown as { document: { body: { dataset: { ready?: string } } } }).document.body.dataset.ready === 'true',
      undefined,
      { timeout: 20_000 },
    );
    await page.locator('#live[data-state="live"]').waitFor();
    expect(await page.locator('#phone-chat .row.mine').count()).toBe(0);
    expect(pageErrors).toEqual([]);
  }, 40_000);
});

