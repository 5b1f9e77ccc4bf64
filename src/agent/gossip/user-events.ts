/**
 * Consul's user events (`/v1/event/fire`, `/v1/event/list`, `meshd event`, `meshd watch
 * -type=event`): fire-and-forget messages to every agent of the datacenter, sent as the gossip
 * membership's user messages (gossipsub, and piggybacked on SWIM with push-pull repair).
 *
 * - Each agent keeps the last {@link EVENT_BUFFER} events it accepted (Consul keeps 256), in
 *   arrival order, and drops any ID it has already seen, so an event is delivered once however
 *   many paths bring it.
 * - Filters are regular expressions, as Consul's: `NodeFilter` on the node name, `ServiceFilter`
 *   on a local service name, `TagFilter` (with a service filter) on that service's tags. An agent
 *   the filters exclude does not keep the event.
 * - The list's index is derived from the last event's ID as Consul does (`uuidToUint64`), so
 *   blocking clients see it change with each new event.
 * - Delivery is best effort, as in Consul: nothing is persisted or replayed to a late joiner
 *   (the membership delivers an event it missed only if it fired after this agent joined).
 */

import { randomUUID } from 'node:crypto';
import { z } from 'zod';

/** Consul's (Serf's) `UserEventSizeLimit`: name, payload and filters together. */
export const USER_EVENT_SIZE_LIMIT = 512;
/** Events an agent remembers for `/v1/event/list`. */
export const EVENT_BUFFER = 256;
/** Event IDs remembered to drop duplicates (longer than the buffer: a late copy stays dropped). */
const SEEN_IDS = 4_096;

export interface UserEvent {
  ID: string;
  Name: string;
  /** Base64, or null without payload (Consul's wire form). */
  Payload: string | null;
  NodeFilter: string;
  ServiceFilter: string;
  TagFilter: string;
  Version: number;
  LTime: number;
}

const wireSchema = z.object({
  v: z.literal(1),
  ID: z.string().uuid(),
  Name: z.string().min(1).max(USER_EVENT_SIZE_LIMIT),
  Payload: z.string().max(1_024).nullable(),
  NodeFilter: z.string().max(USER_EVENT_SIZE_LIMIT),
  ServiceFilter: z.string().max(USER_EVENT_SIZE_LIMIT),
  TagFilter: z.string().max(USER_EVENT_SIZE_LIMIT),
  LTime: z.number().int().nonnegative(),
});

/** Thrown for an event that may not be fired (too big, bad filter). */
export class UserEventError extends Error {
  override name = 'UserEventError';
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** Consul's `uuidToUint64`: the event list's blocking index, as a decimal string. */
export function eventIndex(id: string): string {
  const hex = id.replaceAll('-', '');
  if (!/^[0-9a-f]{32}$/i.test(hex)) return '0';
  const low = BigInt(`0x${hex.slice(0, 16)}`);
  const high = BigInt(`0x${hex.slice(16)}`);
  return (low ^ high).toString();
}

function compile(what: string, pattern: string): RegExp | undefined {
  if (pattern === '') return undefined;
  try {
    return new RegExp(pattern);
  } catch (err) {
    throw new UserEventError(400, `Invalid ${what} filter: ${(err as Error).message}`);
  }
}

export interface LocalView {
  nodeName(): string;
  /** The agent's services with their tags. */
  services(): { name: string; tags: string[] }[];
}

export interface FireRequest {
  name: string;
  payload: Uint8Array | undefined;
  nodeFilter: string;
  serviceFilter: string;
  tagFilter: string;
}

export class UserEvents {
  readonly #local: LocalView;
  readonly #publish: (json: string) => void;
  readonly #buffer: UserEvent[] = [];
  readonly #seen = new Set<string>();
  readonly #waiters = new Set<() => void>();
  #clock = 0;
  readonly counters = { received: 0, duplicate: 0, malformed: 0, filtered: 0 };

  /** `publish`: sends an event's JSON to every other agent. */
  constructor(local: LocalView, publish: (json: string) => void) {
    this.#local = local;
    this.#publish = publish;
  }

  /** Validates and sends an event to every agent, this one included; returns it. */
  fire(req: FireRequest): UserEvent {
    if (req.name === '') throw new UserEventError(400, 'Missing name');
    if (req.tagFilter !== '' && req.serviceFilter === '')
      throw new UserEventError(400, 'Cannot provide tag filter without service filter');
    compile('node', req.nodeFilter);
    compile('service', req.serviceFilter);
    compile('tag', req.tagFilter);
    const size =
      Buffer.byteLength(req.name) +
      (req.payload?.byteLength ?? 0) +
      Buffer.byteLength(req.nodeFilter) +
      Buffer.byteLength(req.serviceFilter) +
      Buffer.byteLength(req.tagFilter);
    if (size > USER_EVENT_SIZE_LIMIT) {
      throw new UserEventError(
        413,
        `user event exceeds configured limit of ${USER_EVENT_SIZE_LIMIT} bytes (got ${size}: name, payload and filters)`,
      );
    }
    const event: UserEvent = {
      ID: randomUUID(),
      Name: req.name,
      Payload: req.payload && req.payload.byteLength > 0 ? Buffer.from(req.payload).toString('base64') : null,
      NodeFilter: req.nodeFilter,
      ServiceFilter: req.serviceFilter,
      TagFilter: req.tagFilter,
      Version: 1,
      LTime: ++this.#clock,
    };
    const { Version: _v, ...rest } = event;
    this.#publish(JSON.stringify({ v: 1, ...rest }));
    this.#accept(event);
    return event;
  }

  /** An event's JSON from another agent. Anything malformed is dropped and counted. */
  receive(json: string): void {
    let parsed: z.infer<typeof wireSchema>;
    try {
      parsed = wireSchema.parse(JSON.parse(json));
    } catch {
      this.counters.malformed++;
      return;
    }
    const { v: _v, ...rest } = parsed;
    this.counters.received++;
    this.#clock = Math.max(this.#clock, parsed.LTime);
    this.#accept({ ...rest, Version: 1 });
  }

  /** Events kept, oldest first, optionally only those named `name`. */
  list(name?: string): UserEvent[] {
    return name === undefined || name === ''
      ? [...this.#buffer]
      : this.#buffer.filter((e) => e.Name === name);
  }

  /** Resolves when the next event is accepted, or after `ms`, or when `signal` aborts. */
  waitForEvent(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  #accept(e: UserEvent): void {
    if (this.#seen.has(e.ID)) {
      this.counters.duplicate++;
      return;
    }
    this.#seen.add(e.ID);
    if (this.#seen.size > SEEN_IDS) this.#seen.delete(this.#seen.values().next().value as string);
    if (!this.#matches(e)) {
      this.counters.filtered++;
      return;
    }
    this.#buffer.push(e);
    if (this.#buffer.length > EVENT_BUFFER) this.#buffer.shift();
    for (const w of [...this.#waiters]) w();
  }

  /** Consul's `shouldProcessUserEvent`; a filter that does not compile here matches nothing. */
  #matches(e: UserEvent): boolean {
    try {
      const node = compile('node', e.NodeFilter);
      if (node && !node.test(this.#local.nodeName())) return false;
      const service = compile('service', e.ServiceFilter);
      if (!service) return true;
      const tag = compile('tag', e.TagFilter);
      return this.#local
        .services()
        .some((s) => service.test(s.name) && (!tag || s.tags.some((t) => tag.test(t))));
    } catch {
      return false;
    }
  }
}
