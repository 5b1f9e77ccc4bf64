/**
 * The DNS server's UDP socket on Linux: datagrams read and answered in batches by
 * native/udp-batch.c (recvmmsg/sendmmsg), one call into JavaScript per batch.
 *
 * Why: under load, node:dgram's cost per datagram (a call into JavaScript, a Buffer, an rinfo
 * object, a send request, and a recvmsg and a sendmsg) was most of an answer's. A bare dgram
 * socket that only copies a fixed answer peaked at 59-75k answers/s on a 2-vCPU machine where
 * dnsmasq answered 64-94k; the same copy through this socket answered 130k (1.6x dnsmasq's, same
 * run). A query alone still costs the same (a batch of one): the gain is in bursts and under load.
 *
 * The addon is built by `npm ci` (scripts/build-native.ts) when there is a C compiler. Without it,
 * or on another system, `loadUdpBatch()` is undefined and the server uses node:dgram.
 */

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';

/** Where scripts/build-native.ts puts the addon, from the project's root. */
export const NATIVE_UDP_BATCH_PATH = 'node_modules/.cache/meshd-native/udp-batch.node';

/** The ABI this module speaks (native/udp-batch.c's ABI_VERSION); another build is not used. */
const ABI_VERSION = 2;

interface NativeUdpBatch {
  abiVersion: number;
  batch: number;
  slot: number;
  addressBytes: number;
  rounds: number;
  open(
    family: 4 | 6,
    host: string,
    port: number,
    onBatch: (count: number) => void,
  ): { handle: object; shared: ArrayBuffer; port: number };
  send(handle: object, data: Uint8Array, address: Uint8Array): boolean;
  close(handle: object): void;
}

/**
 * What to do with one datagram: return an answer to send back now, or undefined (none, or one
 * that will go later through `send` to `peer(from)`). `query` is a view of memory the next batch
 * reuses: copy what outlives the call. `cut` says the datagram was longer than a slot and this
 * is its beginning.
 */
export type OnDatagram = (query: Buffer, from: number, cut: boolean) => Buffer | undefined;

let loaded: NativeUdpBatch | null | undefined;
let loadError: string | undefined;

/** The addon, or undefined when it was not built or cannot be used here (`loadUdpBatchError`). */
export function loadUdpBatch(): NativeUdpBatch | undefined {
  if (loaded === undefined) {
    loaded = null;
    const path = fileURLToPath(new URL(`../../../${NATIVE_UDP_BATCH_PATH}`, import.meta.url));
    if (process.platform !== 'linux') loadError = `${process.platform} has no recvmmsg/sendmmsg`;
    else if (!existsSync(path)) loadError = 'not built (npm ci builds it when there is a C compiler)';
    else {
      try {
        const native = createRequire(import.meta.url)(path) as NativeUdpBatch;
        if (native.abiVersion === ABI_VERSION) loaded = native;
        else loadError = `built for ABI ${native.abiVersion}, not ${ABI_VERSION} (run npm ci)`;
      } catch (err) {
        loadError = (err as Error).message;
      }
    }
  }
  return loaded ?? undefined;
}

/** Why `loadUdpBatch()` is undefined. */
export function loadUdpBatchError(): string | undefined {
  loadUdpBatch();
  return loadError;
}

export class BatchUdpSocket {
  readonly port: number;
  readonly stats = {
    /** Calls from the addon, each with one or more datagrams. */
    batches: 0,
    datagrams: 0,
    /** Answers the handler threw on instead of returning (the datagram is dropped). */
    handlerErrors: 0,
  };
  readonly #native: NativeUdpBatch;
  readonly #handle: object;
  readonly #in: Buffer;
  readonly #out: Buffer;
  readonly #addrs: Buffer;
  readonly #lens: Int32Array;
  readonly #counters: Float64Array;
  #onDatagram: OnDatagram;
  #closed = false;

  /** Binds `host:port` (0: a free port); throws as bind does (`code` EADDRINUSE and so on). */
  constructor(native: NativeUdpBatch, host: string, port: number, onDatagram: OnDatagram) {
    this.#native = native;
    this.#onDatagram = onDatagram;
    const { batch, slot, addressBytes } = native;
    let opened: ReturnType<NativeUdpBatch['open']>;
    try {
      opened = native.open(isIP(host) === 6 ? 6 : 4, host, port, (count) => this.#onBatch(count));
    } catch (err) {
      // "bind: address already in use" → "bind 127.0.0.1:8600: address already in use"
      const e = err as NodeJS.ErrnoException;
      e.message = e.message.replace(/^(\w+):/, `$1 ${isIP(host) === 6 ? `[${host}]` : host}:${port}:`);
      throw e;
    }
    this.#handle = opened.handle;
    this.port = opened.port;
    // The layout native/udp-batch.c describes.
    const shared = opened.shared;
    this.#in = Buffer.from(shared, 0, batch * slot);
    this.#out = Buffer.from(shared, batch * slot, batch * slot);
    const addrsAt = 2 * batch * slot;
    this.#addrs = Buffer.from(shared, addrsAt, batch * addressBytes);
    const lensAt = addrsAt + batch * addressBytes;
    this.#lens = new Int32Array(shared, lensAt, 3 * batch);
    this.#counters = new Float64Array(shared, lensAt + 3 * batch * 4, 3);
  }

  /** Answers the kernel took, and those it refused (a full send buffer: lost, as UDP may be). */
  get sent(): { ok: number; refused: number } {
    return { ok: this.#counters[0] as number, refused: this.#counters[1] as number };
  }

  /** Errors the socket reported to its poll (cleared, and reading went on). */
  get socketErrors(): number {
    return this.#counters[2] as number;
  }

  /** The sender of datagram `from` of the batch in hand, kept for an answer sent later. */
  peer(from: number): Uint8Array {
    const { batch, addressBytes } = this.#native;
    const at = from * addressBytes;
    return Uint8Array.prototype.slice.call(this.#addrs, at, at + (this.#lens[2 * batch + from] as number));
  }

  /** Sends `data` to `peer`; false when the kernel refused it or the socket is closed. */
  send(data: Uint8Array, peer: Uint8Array): boolean {
    if (this.#closed) return false;
    return this.#native.send(this.#handle, data, peer);
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#onDatagram = () => undefined;
      this.#native.close(this.#handle);
    }
    return Promise.resolve();
  }

  #onBatch(count: number): void {
    this.stats.batches++;
    this.stats.datagrams += count;
    const { batch, slot } = this.#native;
    const lens = this.#lens;
    for (let i = 0; i < count; i++) {
      const len = lens[i] as number;
      const at = i * slot;
      const query = this.#in.subarray(at, at + (len < 0 ? slot : len));
      let answer: Buffer | undefined;
      try {
        answer = this.#onDatagram(query, i, len < 0);
      } catch {
        this.stats.handlerErrors++;
        continue;
      }
      if (answer === undefined) continue;
      if (answer.length <= slot) {
        answer.copy(this.#out, at);
        lens[batch + i] = answer.length;
      } else {
        this.send(answer, this.peer(i));
      }
      // The handler may have closed the socket: the addon sends nothing more then.
    }
  }
}
