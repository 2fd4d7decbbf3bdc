/**
 * The console in a real browser: Debian's Chromium driven by playwright-core (no browser download;
 * .ci/run installs `chromium` with apt-get). A WeChat user writes, the agent sees it in that user's
 * own conversation (per-user mode), sees the user's picture through the bridge's media link, and
 * replies; the phone shows the reply and the agent sees "delivered"; then WeChat's clock jumps past
 * the 48-hour window and the agent sees the 45015 failure. A screenshot is kept in test-artifacts/.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { createLogger } from '../../src/logger';
import { startSandbox, type Sandbox } from '../../src/sandbox/sandbox';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ONE_PIXEL_PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');
const ARTIFACTS = path.join(__dirname, '..', '..', 'test-artifacts');

describe('the sandbox console in Chromium', () => {
  let sandbox: Sandbox | undefined;
  let context: BrowserContext | undefined;
  let profile: string | undefined;
  let page: Page;

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
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await sandbox?.stop();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  test('WeChat → agent → reply → delivered, then the 48-hour window failure', async () => {
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
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

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'sandbox-console.png') });
    expect(pageErrors).toEqual([]);
  }, 60_000);
});
