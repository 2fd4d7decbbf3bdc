/**
 * What the CLI does with dead letters: the store's dead-letter role (list, read, replay, purge) and
 * its queue counts.
 */
import type { DeadLetter, DeadLetters, JobQueue } from '../store/store';

export type AdminStore = DeadLetters & Pick<JobQueue, 'stats'>;

export class DeadLetterAdmin {
  constructor(private readonly store: AdminStore) {}

  async count(): Promise<number> {
    return (await this.store.stats()).deadLetters;
  }

  /** Newest first. */
  list(limit: number): Promise<DeadLetter[]> {
    return this.store.listDeadLetters({ limit });
  }

  async get(id: string): Promise<DeadLetter | undefined> {
    return this.store.getDeadLetter(id);
  }

  /**
   * Every dead letter as of now. `--all` acts on this snapshot, never on "whatever is dead when the
   * loop gets there": a replayed job that dies again gets a new id and is not replayed in a loop.
   */
  async all(): Promise<DeadLetter[]> {
    const count = await this.count();
    return count === 0 ? [] : this.store.listDeadLetters({ limit: count });
  }

  replay(id: string): Promise<boolean> {
    return this.store.replayDeadLetter(id);
  }

  async purge(id: string): Promise<boolean> {
    return this.store.purgeDeadLetter(id);
  }
}
