/**
 * A wake-up signal between the processes on one PostgreSQL database (`LISTEN` / `NOTIFY`): one
 * process publishes a key, every process listening on the channel hears it at once. Used where a
 * process waits for something another one stores (a passive reply for a held push), so that it
 * need not poll the store often. Best effort by nature: a notification is lost while a listener is
 * disconnected, so waiters still look at the store now and then; the signal only makes them fast.
 *
 * The store knows nothing of what the keys mean.
 */
import { Client } from 'pg';
import type { Logger } from '../../logger';
import type { StoreSignal } from '../store';

const CHANNEL_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const RECONNECT_MS = 1_000;

export async function openPostgresSignal(connectionString: string, channel: string, logger: Logger): Promise<StoreSignal> {
  if (!CHANNEL_NAME.test(channel)) throw new RangeError(`not a plain channel name: ${channel}`);
  const listeners = new Set<(key: string) => void>();
  let client: Client | undefined;
  let closed = false;
  let reconnect: NodeJS.Timeout | undefined;

  async function connect(): Promise<void> {
    const next = new Client({ connectionString, connectionTimeoutMillis: 5_000 });
    next.on('notification', (message) => {
      if (message.channel !== channel || message.payload === undefined) return;
      for (const listener of listeners) listener(message.payload);
    });
    const lost = (error?: Error) => {
      if (client !== next) return;
      client = undefined;
      next.end().catch(() => undefined);
      if (closed) return;
      logger.warn({ err: error, channel }, 'lost the database notification channel; reconnecting (waiters poll meanwhile)');
      scheduleReconnect();
    };
    next.on('error', lost);
    next.on('end', () => lost());
    await next.connect();
    await next.query(`LISTEN ${channel}`);
    if (closed) {
      await next.end();
      return;
    }
    client = next;
  }

  function scheduleReconnect(): void {
    clearTimeout(reconnect);
    reconnect = setTimeout(() => {
      connect().catch((error: unknown) => {
        logger.warn({ err: error, channel }, 'could not reconnect the database notification channel');
        if (!closed) scheduleReconnect();
      });
    }, RECONNECT_MS);
    reconnect.unref();
  }

  await connect();

  return {
    async publish(key) {
      if (!client) throw new Error('the database notification channel is not connected');
      await client.query('SELECT pg_notify($1, $2)', [channel, key]);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      closed = true;
      clearTimeout(reconnect);
      const current = client;
      client = undefined;
      listeners.clear();
      await current?.end().catch(() => undefined);
    },
  };
}
