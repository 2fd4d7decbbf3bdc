/**
 * What the CLI does with dead letters, over the `Store` interface.
 *
 * `Store` can list, replay and count dead letters. Purging, and reading one by id, need methods it
 * does not have yet (requested in notes/cli-store-needs.md); a store that has them is used through
 * them, else `show` falls back to scanning the list and `purge` fails with "not supported yet".
 */
import type { DeadLetter, Store } from '../store/store';
import { CliFailure } from './errors';

/** The store methods the CLI would like; optional until every Store implements them. */
export interface DeadLetterStoreExtras {
  /** One dead letter by id, or undefined. */
  getDeadLetter?(id: string): Promise<DeadLetter | undefined>;
  /** Deletes a dead letter for good; resolves false when there is none with this id. */
  purgeDeadLetter?(id: string): Promise<boolean>;
}

export type AdminStore = Pick<Store, 'listDeadLetters' | 'replayDeadLetter' | 'stats'> & DeadLetterStoreExtras;

export const PURGE_NOT_SUPPORTED = 'purging dead letters is not supported by this store yet (it needs Store.purgeDeadLetter)';

export class DeadLetterAdmin {
  constructor(private readonly store: AdminStore) {}

  get canPurge(): boolean {
    return typeof this.store.purgeDeadLetter === 'function';
  }

  async count(): Promise<number> {
    return (await this.store.stats()).deadLetters;
  }

  /** Newest first. */
  list(limit: number): Promise<DeadLetter[]> {
    return this.store.listDeadLetters({ limit });
  }

  async get(id: string): Promise<DeadLetter | undefined> {
    if (typeof this.store.getDeadLetter === 'function') return this.store.getDeadLetter(id);
    return (await this.all()).find((letter) => letter.id === id);
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
    if (typeof this.store.purgeDeadLetter !== 'function') throw new CliFailure(PURGE_NOT_SUPPORTED);
    return this.store.purgeDeadLetter(id);
  }
}
