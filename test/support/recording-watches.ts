import { WatchRegistry } from '../../src/catalog/watch.ts';

/** A watch registry that remembers the last index each watch key fired at (the registry itself keeps none). */
export class RecordingRegistry extends WatchRegistry {
  readonly fired = new Map<string, number>();
  override notify(keys: Iterable<string>, index: number): void {
    const list = [...keys];
    for (const k of list) this.fired.set(k, index);
    super.notify(list, index);
  }
  changedAt(key: string): number {
    return this.fired.get(key) ?? 0;
  }
}
