/**
 * The listeners of an emulator's changes (the console's streams, tests, the demo bot). A listener
 * that throws (a closed console stream) is its own problem: the emulator and the other listeners
 * carry on.
 */
export class Listeners<T> {
  private readonly listeners = new Set<(value: T) => void>();

  get size(): number {
    return this.listeners.size;
  }

  /** Returns a function that removes the listener. */
  add(listener: (value: T) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(value: T): void {
    for (const listener of this.listeners) {
      try {
        listener(value);
      } catch {
        // The listener's failure is its own.
      }
    }
  }
}
