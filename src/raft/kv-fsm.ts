import type { FsmSnapshot, StateMachine } from './fsm.ts';
import type { Entry } from './types.ts';

/**
 * A tiny string key-value state machine, for Raft's tests, simulation and benchmarks only (the real
 * FSM is the catalog). Commands are JSON.
 */
export type KvCommand =
  | { op: 'put'; key: string; value: string }
  | { op: 'cas'; key: string; expected: string | null; value: string }
  | { op: 'delete'; key: string };

export type KvResult = { ok: true; value?: string | null } | { ok: false };

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const SNAPSHOT_CHUNK_KEYS = 4096;

export function encodeKvCommand(c: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(c));
}

export class KvStateMachine implements StateMachine<KvResult> {
  private data = new Map<string, string>();

  get(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  size(): number {
    return this.data.size;
  }

  apply(entry: Entry): KvResult {
    let c: KvCommand;
    try {
      c = JSON.parse(decoder.decode(entry.data)) as KvCommand;
    } catch {
      // A command that does not parse fails the same way on every server, so it is still deterministic.
      return { ok: false };
    }
    switch (c.op) {
      case 'put':
        this.data.set(c.key, c.value);
        return { ok: true };
      case 'delete':
        this.data.delete(c.key);
        return { ok: true };
      case 'cas':
        if ((this.data.get(c.key) ?? null) !== c.expected) return { ok: false };
        this.data.set(c.key, c.value);
        return { ok: true };
      default:
        return { ok: false };
    }
  }

  snapshot(): FsmSnapshot {
    const rows = [...this.data.entries()];
    return {
      async *chunks() {
        for (let i = 0; i < rows.length; i += SNAPSHOT_CHUNK_KEYS) {
          yield encoder.encode(`${JSON.stringify(rows.slice(i, i + SNAPSHOT_CHUNK_KEYS))}\n`);
        }
      },
    };
  }

  async restore(chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const next = new Map<string, string>();
    let pending = '';
    for await (const chunk of chunks) {
      pending += decoder.decode(chunk, { stream: true });
      let nl = pending.indexOf('\n');
      while (nl >= 0) {
        for (const [k, v] of JSON.parse(pending.slice(0, nl)) as [string, string][]) next.set(k, v);
        pending = pending.slice(nl + 1);
        nl = pending.indexOf('\n');
      }
    }
    if (pending.trim() !== '') throw new Error('kv snapshot ends mid-record');
    this.data = next;
  }

  /** Synchronous copy for the simulator, which has no event loop between steps. */
  toJSON(): [string, string][] {
    return [...this.data.entries()];
  }

  static fromJSON(rows: [string, string][]): KvStateMachine {
    const fsm = new KvStateMachine();
    fsm.data = new Map(rows);
    return fsm;
  }
}
