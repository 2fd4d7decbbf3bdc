/**
 * LISTEN/NOTIFY between two processes' worth of connections on one PostgreSQL database, and what it
 * buys passive replies: a push held on one instance wakes as soon as another stores the reply,
 * without waiting for its next look at the store.
 */
import { createPassiveReplies } from '../../../../src/bridge/to-wechat/passive-replies';
import { createLogger } from '../../../../src/logger';
import { openPostgresSignal } from '../../../../src/store/postgres/signal';
import { PostgresStore } from '../../../../src/store/postgres/store';
import type { StoreSignal } from '../../../../src/store/store';
import { createTestDatabase, type TestDatabase } from '../../../support/postgres';
import { sleep, waitFor } from '../../../support/wait';

const logger = createLogger({ level: 'silent' });

describe('openPostgresSignal', () => {
  let db: TestDatabase;
  const opened: Array<{ close(): Promise<void> }> = [];
  beforeAll(async () => {
    db = await createTestDatabase('bridge_signal');
  });
  afterAll(async () => {
    for (const thing of opened.reverse()) await thing.close();
    await db.drop();
  });
  const signal = async (channel = 'test_channel'): Promise<StoreSignal> => {
    const opening = await openPostgresSignal(db.url, channel, logger);
    opened.push(opening);
    return opening;
  };

  it('delivers a published key to every listener on the channel, and only on that channel', async () => {
    const a = await signal();
    const b = await signal();
    const other = await signal('other_channel');
    const heardByB: string[] = [];
    const heardByOther: string[] = [];
    b.subscribe((key) => heardByB.push(key));
    other.subscribe((key) => heardByOther.push(key));
    await a.publish('oUser1');
    await waitFor('the notification', () => heardByB.includes('oUser1'));
    expect(heardByOther).toEqual([]);
  });

  it('refuses a channel name that is not a plain identifier', async () => {
    await expect(openPostgresSignal(db.url, 'x; DROP TABLE jobs', logger)).rejects.toThrow(RangeError);
  });

  it('wakes a push held by one instance as soon as another deposits its reply', async () => {
    const stores = [await PostgresStore.open(db.url), await PostgresStore.open(db.url)];
    opened.push(...stores);
    const [holder, depositor] = await Promise.all(
      stores.map(async (store) =>
        createPassiveReplies({ store, logger, mode: 'passive', replyTtlMs: 60_000, signal: await signal('wechat_passive_replies'), pollMs: 30_000 }),
      ),
    );
    const started = Date.now();
    const held = holder!.waitFor('oHeld', Date.now() + 20_000);
    await sleep(100);
    await depositor!.deposit('oHeld', { conversationId: 'CON-1', eventId: '7', body: { direction: 'outbound', content: 'hi' } });
    expect((await held)?.id).toBe('CON-1:7');
    // Without the signal the holder would only look again after its 30 s poll.
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
