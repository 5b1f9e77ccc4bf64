/**
 * A small HTTP/1.1 client for HTTP checks, over `node:net` / `node:tls` sockets kept alive in a
 * pool. Node's `http` client (ClientRequest, IncomingMessage, their streams and the agent) is
 * JavaScript that costs more than the sockets themselves on a client agent, which runs V8 without
 * its optimizing compilers; a check needs far less of it: one prepared request written in one go,
 * a response read straight from the socket (`onread`, into one buffer shared by every connection,
 * so no stream machinery runs per read) and kept as status, `Location` and the body's tail.
 *
 * Responses are read per RFC 9112: 1xx interim responses are skipped (101 ends the exchange);
 * HEAD, 204 and 304 have no body; `Transfer-Encoding` ending in chunked is decoded (extensions
 * and trailers ignored), another one reads until close; else `Content-Length`, else until close.
 * The body is consumed to its end (only the last `maxBody` bytes kept) before the socket may go
 * back to the pool; anything odd about it (an error, a short body, bytes after the response)
 * closes the socket instead.
 *
 * Pooling: idle sockets are kept per (scheme, host, port, TLS settings), last in first out, at most
 * {@link Http1PoolOptions.maxIdlePerKey} of them, unreferenced so they never hold the process open;
 * one that the server closes (or that receives anything) while idle is dropped at once, and a
 * sweep timer closes those idle longer than the idle timeout (or than the server's `Keep-Alive:
 * timeout` less a second). A request that fails on a reused socket before any byte of its response
 * (reset, broken pipe, EOF) is retried once on a new connection: the server closed it under us.
 */

import net from 'node:net';
import tls from 'node:tls';
import { TailBuffer } from './output.ts';

/** Where a request goes. */
export interface Http1Target {
  secure: boolean;
  /** A host name or IP address (IPv6 without brackets). */
  host: string;
  port: number;
  /** SNI name and the name the certificate is checked against; '' for none (the host is an IP). */
  servername: string;
  rejectUnauthorized: boolean;
}

/** A request ready to be written, built once (see `http.ts`) and sent on every run. */
export interface Http1Request {
  target: Http1Target;
  /** The pool key: connections are shared only between requests with the same key. */
  key: string;
  /** Request line, headers and body. */
  bytes: Buffer;
  /** A HEAD request: its response has no body whatever its headers say. */
  noBody: boolean;
  /** The request asks for `Connection: close`: its socket is not reused. */
  close: boolean;
}

export interface Http1Response {
  status: number;
  /** The reason phrase, '' when the server sent none. */
  reason: string;
  /** The first `Location` header, if any. */
  location: string | undefined;
  /** The last `maxBody` bytes of the body as UTF-8. */
  body: string;
}

/** The deadline passed before the response's headers were read (Go's wording). */
export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
  constructor() {
    super('context deadline exceeded (Client.Timeout exceeded while awaiting headers)');
  }
}

/** A response the client cannot read (Go's `net/http` wording). */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

export interface Http1PoolOptions {
  /** Idle sockets kept per key; more are closed. @default 256 */
  maxIdlePerKey?: number;
  /** An idle socket unused this long is closed. @default 90_000 (Go's `IdleConnTimeout`) */
  idleTimeoutMs?: number;
  /** The clock idle sockets expire by. @default Date.now */
  now?: () => number;
}

/** Response header bytes accepted (status line, headers, and again for trailers). */
const MAX_HEADER_BYTES = 64 * 1024;
/** The longest chunk-size line accepted. */
const MAX_CHUNK_LINE = 4096;
/** Interim (1xx) responses skipped before giving up, as Go's client. */
const MAX_INTERIM = 5;
/** A socket is not reused within this long of the server's `Keep-Alive: timeout` (Node's margin). */
const KEEP_ALIVE_MARGIN_MS = 1000;
const TCP_KEEP_ALIVE_MS = 15_000;

/** Every socket reads into this buffer: a read is parsed, and what is kept copied, before the next. */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

const STATUS_LINE = /^HTTP\/(\d)\.(\d) ([1-9]\d\d)(?: (.*))?$/s;
/** A field name and its colon, matched where a header line starts. */
const FIELD_NAME = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+:/y;
const CONTENT_LENGTH = /^\d{1,15}$/;
const CHUNK_SIZE = /^([0-9a-fA-F]{1,13})[ \t]*(?:;.*)?$/s;
const HAS_CLOSE = /(?:^|,)[ \t]*close[ \t]*(?:,|$)/i;
const HAS_KEEP_ALIVE = /(?:^|,)[ \t]*keep-alive[ \t]*(?:,|$)/i;
const FINAL_CHUNKED = /(?:^|,)[ \t]*chunked[ \t]*$/i;
const KEEP_ALIVE_TIMEOUT = /(?:^|[,;])[ \t]*timeout[ \t]*=[ \t]*(\d{1,9})/i;
const OWS = /^[ \t]+|[ \t]+$/g;

// Exchange states.
const HEAD = 0;
const LENGTH = 1;
const CHUNK_SIZE_LINE = 2;
const CHUNK_DATA = 3;
const CHUNK_END = 4;
const TRAILER = 5;
const UNTIL_CLOSE = 6;
const DONE = 7;

/** Node's wording for a connection closed before a response (shown as `connection reset by peer`). */
function hangUp(): Error {
  return Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
}

/** Go's error for a response that does not start with a status line (quoting at most 128 characters). */
function malformed(line: string): ProtocolError {
  return new ProtocolError(`malformed HTTP response ${JSON.stringify(line.slice(0, 128))}`);
}

/** The received start of a response, if it cannot begin with a status line (or its first line is complete and no status line). */
function notStatusLine(b: Buffer, from: number): string | undefined {
  const nl = b.indexOf(10, from);
  const end = nl < 0 ? b.length : b[nl - 1] === 13 && nl > from ? nl - 1 : nl;
  const line = b.toString('latin1', from, Math.min(end, from + 128));
  if (nl >= 0) return STATUS_LINE.test(b.toString('latin1', from, end)) ? undefined : line;
  return 'HTTP/'.startsWith(line.slice(0, 5)) ? undefined : line;
}

/** Where the header block starting at `from` ends (just past its empty line), or -1. Bare LFs are accepted. */
function headEnd(b: Buffer, from: number): number {
  const crlf = b.indexOf('\n\r\n', from, 'latin1');
  const lf = b.indexOf('\n\n', from, 'latin1');
  if (crlf < 0) return lf < 0 ? -1 : lf + 2;
  return lf < 0 || crlf < lf ? crlf + 3 : lf + 2;
}

/** One socket, its listeners set once for its whole life; events go to its exchange, or drop it while idle. */
class Conn {
  readonly sock: net.Socket;
  readonly key: string;
  readonly #pool: Http1Pool;
  /** The exchange using the socket; undefined while idle. */
  ex: Exchange | undefined;
  /** A response was read on it before: a failure may mean the server closed it while idle. */
  reused = false;
  /** While idle: when it stops being reusable (ms since the epoch). */
  expires = 0;
  dead = false;

  constructor(pool: Http1Pool, req: Http1Request) {
    this.#pool = pool;
    this.key = req.key;
    const t = req.target;
    const onread: net.OnReadOpts = { buffer: READ_BUFFER, callback: (n) => this.#read(n) };
    if (t.secure) {
      // tls.connect takes `onread` as net.connect does (Node's documentation), though its types omit it.
      const options: tls.ConnectionOptions & { onread: net.OnReadOpts } = {
        host: t.host,
        port: t.port,
        servername: t.servername === '' ? undefined : t.servername,
        rejectUnauthorized: t.rejectUnauthorized,
        ALPNProtocols: ['http/1.1'],
        onread,
      };
      this.sock = tls.connect(options);
    } else this.sock = net.connect({ host: t.host, port: t.port, onread });
    this.sock.setNoDelay(true);
    this.sock.setKeepAlive(true, TCP_KEEP_ALIVE_MS);
    this.sock.on('end', () => this.#closed(undefined));
    this.sock.on('close', () => this.#closed(undefined));
    this.sock.on('error', (err) => this.#closed(err));
  }

  destroy(): void {
    this.dead = true;
    this.ex = undefined;
    this.sock.destroy();
  }

  #read(n: number): boolean {
    if (this.ex !== undefined) this.ex.feed(READ_BUFFER.subarray(0, n));
    else this.#pool.drop(this); // unsolicited bytes on an idle socket: it cannot be reused
    return true;
  }

  #closed(err: Error | undefined): void {
    if (this.ex !== undefined) this.ex.lost(err);
    else this.#pool.drop(this);
  }
}

/** One request and its response, parsed as its bytes arrive. Listens to the run's signal itself. */
class Exchange {
  readonly #pool: Http1Pool;
  readonly #req: Http1Request;
  readonly #signal: AbortSignal;
  readonly #max: number;
  readonly #resolve: (r: Http1Response) => void;
  readonly #reject: (e: unknown) => void;
  readonly #tail: TailBuffer;
  #conn: Conn | undefined;
  #settled = false;
  #retried = false;
  #state = HEAD;
  /** Response bytes received on the current connection. */
  #got = 0;
  /** A partial header block (copied out of the read buffer). */
  #pending: Buffer | undefined;
  /** A partial chunk-size or trailer line. */
  #line = '';
  #trailerBytes = 0;
  #remaining = 0;
  #interim = 0;
  #status = 0;
  #reason = '';
  #location: string | undefined;
  /** The response lets the connection be reused (if it is also read to its end). */
  #persistent = false;
  /** The server's `Keep-Alive: timeout`, less a margin; Infinity without one. */
  #keepAliveMs = Number.POSITIVE_INFINITY;

  constructor(
    pool: Http1Pool,
    req: Http1Request,
    signal: AbortSignal,
    maxBody: number,
    resolve: (r: Http1Response) => void,
    reject: (e: unknown) => void,
  ) {
    this.#pool = pool;
    this.#req = req;
    this.#signal = signal;
    this.#max = Math.max(1, maxBody);
    this.#tail = new TailBuffer(maxBody);
    this.#resolve = resolve;
    this.#reject = reject;
  }

  /** Writes the request on `conn`, or on a new connection. */
  start(conn: Conn | undefined): void {
    conn ??= this.#pool.connect(this.#req);
    this.#conn = conn;
    this.#got = 0;
    conn.ex = this;
    conn.sock.write(this.#req.bytes);
  }

  /** The run's deadline (the signal's 'abort'): before the headers it is a timeout, after them the end of the body. */
  handleEvent(): void {
    if (this.#settled) return;
    if (this.#state === HEAD) this.#fail(new TimeoutError());
    else this.#end(false);
  }

  /** The connection ended (`err` undefined) or failed. */
  lost(err: Error | undefined): void {
    const conn = this.#conn!;
    if (this.#state === HEAD) {
      const code = (err as NodeJS.ErrnoException | undefined)?.code;
      if (
        conn.reused &&
        !this.#retried &&
        !this.#pool.closed &&
        this.#got === 0 &&
        !this.#signal.aborted &&
        (err === undefined || code === 'ECONNRESET' || code === 'EPIPE')
      ) {
        // The server closed the idle socket as we wrote to it: once more on a new connection.
        this.#retried = true;
        conn.destroy();
        this.start(undefined);
        return;
      }
      this.#fail(err ?? hangUp());
    } else this.#end(false); // until close: the body's end; else a body cut short, kept as it is (as Consul)
  }

  feed(b: Buffer): void {
    this.#got += b.length;
    let p = 0;
    while (p < b.length && this.#state !== DONE) {
      switch (this.#state) {
        case HEAD:
          p = this.#head(b, p);
          break;
        case LENGTH:
        case CHUNK_DATA: {
          const take = Math.min(this.#remaining, b.length - p);
          this.#body(b, p, p + take);
          p += take;
          this.#remaining -= take;
          if (this.#remaining === 0) this.#state = this.#state === LENGTH ? DONE : CHUNK_END;
          break;
        }
        case UNTIL_CLOSE:
          this.#body(b, p, b.length);
          p = b.length;
          break;
        default:
          p = this.#chunkLine(b, p);
      }
      if (this.#settled) return;
    }
    // Bytes after the response mean the server and we disagree on where it ends.
    if (this.#state === DONE) this.#end(p === b.length && this.#persistent);
  }

  /** Parses a header block; returns where the next bytes start (b.length when all were taken). */
  #head(b: Buffer, p: number): number {
    let buf = b;
    let from = p;
    const before = this.#pending?.length ?? 0;
    if (this.#pending !== undefined) {
      buf = Buffer.concat([this.#pending, b.subarray(p)]);
      from = 0;
    }
    // Search again only where the new bytes could complete the empty line.
    const end = headEnd(buf, Math.max(from, before - 3));
    if (end < 0 || end - from > MAX_HEADER_BYTES) {
      // Not a response at all (a server of another protocol): say so now rather than at the deadline.
      const bad = notStatusLine(buf, from);
      if (bad !== undefined) this.#fail(malformed(bad));
      else if (buf.length - from > MAX_HEADER_BYTES) {
        this.#fail(
          new ProtocolError(`net/http: server response headers exceeded ${MAX_HEADER_BYTES} bytes; aborted`),
        );
      } else this.#pending = Buffer.copyBytesFrom(buf, from, buf.length - from);
      return b.length;
    }
    this.#pending = undefined;
    this.#parseHead(buf.toString('latin1', from, end));
    return p + (end - from) - before;
  }

  #parseHead(s: string): void {
    let pos = s.indexOf('\n');
    const statusLine = s.slice(0, s.charCodeAt(pos - 1) === 13 ? pos - 1 : pos);
    const m = STATUS_LINE.exec(statusLine);
    if (m === null) {
      this.#fail(malformed(statusLine));
      return;
    }
    pos++;
    let contentLength = -1;
    let lengthValue = '';
    let te: string | undefined;
    let connection = '';
    let keepAlive = '';
    let location: string | undefined;
    for (;;) {
      const nl = s.indexOf('\n', pos);
      const le = nl > pos && s.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      if (le === pos) break; // the empty line
      const first = s.charCodeAt(pos);
      if (first === 32 || first === 9) {
        pos = nl + 1; // obs-fold: the continuation of a header, one not used here
        continue;
      }
      FIELD_NAME.lastIndex = pos;
      if (!FIELD_NAME.test(s) || FIELD_NAME.lastIndex > le) {
        this.#fail(new ProtocolError(`malformed MIME header line: ${s.slice(pos, le)}`));
        return;
      }
      const c = FIELD_NAME.lastIndex - 1; // the colon
      const start = pos;
      pos = nl + 1;
      // Only a few headers matter: names of other lengths are not even compared.
      const len = c - start;
      if (len !== 8 && len !== 10 && len !== 14 && len !== 17) continue;
      const name = s.slice(start, c).toLowerCase();
      const value = s.slice(c + 1, le);
      if (name === 'content-length') {
        const v = value.replace(OWS, '');
        if (!CONTENT_LENGTH.test(v)) {
          this.#fail(new ProtocolError(`bad Content-Length ${JSON.stringify(v)}`));
          return;
        }
        if (contentLength >= 0 && Number(v) !== contentLength) {
          this.#fail(
            new ProtocolError(
              `http: message cannot contain multiple Content-Length headers; got ${JSON.stringify(lengthValue)} and ${JSON.stringify(v)}`,
            ),
          );
          return;
        }
        contentLength = Number(v);
        lengthValue = v;
      } else if (name === 'transfer-encoding') te = te === undefined ? value : `${te},${value}`;
      else if (name === 'connection') connection += `,${value}`;
      else if (name === 'keep-alive') keepAlive += `,${value}`;
      else if (name === 'location' && location === undefined) location = value.replace(OWS, '');
    }
    const status = Number(m[3]);
    if (status < 200 && status !== 101) {
      // Interim: the final response follows.
      if (++this.#interim > MAX_INTERIM) {
        this.#fail(new ProtocolError('net/http: too many 1xx informational responses'));
      }
      return;
    }
    this.#status = status;
    this.#reason = m[4] ?? '';
    this.#location = location;
    const http11 = m[1] !== '0' && (m[1] !== '1' || m[2] !== '0');
    let persistent = http11 ? !HAS_CLOSE.test(connection) : HAS_KEEP_ALIVE.test(connection);
    if (keepAlive !== '') {
      const t = KEEP_ALIVE_TIMEOUT.exec(keepAlive);
      if (t !== null) {
        this.#keepAliveMs = Number(t[1]) * 1000 - KEEP_ALIVE_MARGIN_MS;
        if (this.#keepAliveMs <= 0) persistent = false;
      }
    }
    if (status === 101) {
      persistent = false; // the connection now speaks another protocol
      this.#state = DONE;
    } else if (this.#req.noBody || status === 204 || status === 304) this.#state = DONE;
    else if (te !== undefined) {
      if (FINAL_CHUNKED.test(te)) {
        this.#state = CHUNK_SIZE_LINE;
        // Both headers: a response to distrust (RFC 9112 §6.3), read by its chunks and not reused.
        if (contentLength >= 0) persistent = false;
      } else {
        this.#state = UNTIL_CLOSE;
        persistent = false;
      }
    } else if (contentLength >= 0) {
      this.#remaining = contentLength;
      this.#state = contentLength === 0 ? DONE : LENGTH;
    } else {
      this.#state = UNTIL_CLOSE;
      persistent = false;
    }
    this.#persistent = persistent && !this.#req.close;
  }

  /** Reads a chunk-size line, the CRLF after a chunk's data, or a trailer line. */
  #chunkLine(b: Buffer, p: number): number {
    const nl = b.indexOf(10, p);
    if (nl < 0) {
      this.#line += b.toString('latin1', p);
      if (this.#line.length > MAX_CHUNK_LINE && this.#state !== TRAILER) this.#end(false);
      else if (this.#trailerBytes + this.#line.length > MAX_HEADER_BYTES) this.#end(false);
      return b.length;
    }
    let line = this.#line + b.toString('latin1', p, nl);
    this.#line = '';
    if (line.charCodeAt(line.length - 1) === 13) line = line.slice(0, -1);
    if (this.#state === CHUNK_SIZE_LINE) {
      const m = CHUNK_SIZE.exec(line);
      const size = m === null ? Number.NaN : Number.parseInt(m[1], 16);
      if (!(size <= Number.MAX_SAFE_INTEGER)) {
        this.#end(false); // a malformed body: what was read is kept, the socket is not
        return b.length;
      }
      this.#remaining = size;
      this.#state = size === 0 ? TRAILER : CHUNK_DATA;
    } else if (this.#state === CHUNK_END) {
      if (line !== '') {
        this.#end(false);
        return b.length;
      }
      this.#state = CHUNK_SIZE_LINE;
    } else if (line === '') this.#state = DONE;
    else {
      this.#trailerBytes += line.length;
      if (this.#trailerBytes > MAX_HEADER_BYTES) {
        this.#end(false);
        return b.length;
      }
    }
    return nl + 1;
  }

  /** Keeps (a copy of) what may end up among the body's last `max` bytes. */
  #body(b: Buffer, from: number, to: number): void {
    if (to - from > this.#max) from = to - this.#max;
    if (to > from) this.#tail.write(Buffer.copyBytesFrom(b, from, to - from));
  }

  #settle(): Conn {
    this.#settled = true;
    this.#signal.removeEventListener('abort', this);
    const conn = this.#conn!;
    conn.ex = undefined;
    return conn;
  }

  /** The response is read (`reuse`: to its end, and the socket may serve another request), or cut short. */
  #end(reuse: boolean): void {
    const conn = this.#settle();
    if (reuse) this.#pool.release(conn, this.#keepAliveMs);
    else conn.destroy();
    this.#resolve({
      status: this.#status,
      reason: this.#reason,
      location: this.#location,
      body: this.#tail.text(),
    });
  }

  #fail(err: unknown): void {
    this.#settle().destroy();
    this.#reject(err);
  }
}

/** Keep-alive connections for HTTP checks; {@link Http1Pool.destroy} closes them all. */
export class Http1Pool {
  readonly #maxIdle: number;
  readonly #idleMs: number;
  readonly #now: () => number;
  /** Idle connections per key, the most recently used last. */
  readonly #idle = new Map<string, Conn[]>();
  /** Every open connection, idle or in use. */
  readonly #all = new Set<Conn>();
  #idleCount = 0;
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: Http1PoolOptions = {}) {
    this.#maxIdle = opts.maxIdlePerKey ?? 256;
    this.#idleMs = opts.idleTimeoutMs ?? 90_000;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * Sends `req` and reads its response, keeping the last `maxBody` bytes of the body. Rejects with
   * a {@link TimeoutError} if `signal` aborts before the response's headers, with a
   * {@link ProtocolError} for a response it cannot read, or with the socket's error; a deadline or
   * error during the body resolves with what was read.
   */
  request(req: Http1Request, signal: AbortSignal, maxBody: number): Promise<Http1Response> {
    if (signal.aborted) return Promise.reject(new TimeoutError());
    return new Promise((resolve, reject) => {
      const ex = new Exchange(this, req, signal, maxBody, resolve, reject);
      signal.addEventListener('abort', ex);
      try {
        ex.start(this.#take(req.key));
      } catch (err) {
        // net.connect throws for a port it refuses (0): no connection was made.
        signal.removeEventListener('abort', ex);
        reject(err);
      }
    });
  }

  /** Whether {@link Http1Pool.destroy} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Idle connections, for tests. */
  get idle(): number {
    return this.#idleCount;
  }

  /** Closes every connection, idle or in use; later requests still work but keep nothing. */
  destroy(): void {
    this.#closed = true;
    this.#stopSweeper();
    this.#idle.clear();
    this.#idleCount = 0;
    // Not Conn.destroy: a connection in use tells its exchange, which then fails (it is not retried).
    for (const c of this.#all) c.sock.destroy();
    this.#all.clear();
  }

  /** @internal */
  connect(req: Http1Request): Conn {
    const conn = new Conn(this, req);
    this.#all.add(conn);
    conn.sock.once('close', () => this.#all.delete(conn));
    return conn;
  }

  /** @internal A connection done with a response it read to the end; `keepAliveMs`: the server's hint. */
  release(conn: Conn, keepAliveMs: number): void {
    let list = this.#idle.get(conn.key);
    if (this.#closed || conn.dead || (list !== undefined && list.length >= this.#maxIdle)) {
      conn.destroy();
      return;
    }
    if (list === undefined) {
      list = [];
      this.#idle.set(conn.key, list);
    }
    conn.reused = true;
    conn.expires = this.#now() + Math.min(this.#idleMs, keepAliveMs);
    conn.sock.unref();
    list.push(conn);
    this.#idleCount++;
    if (this.#sweeper === undefined) {
      this.#sweeper = setInterval(() => this.#sweep(), Math.max(10, this.#idleMs / 3));
      this.#sweeper.unref();
    }
  }

  /** @internal An idle connection the server closed (or wrote to): out of the pool. */
  drop(conn: Conn): void {
    const list = this.#idle.get(conn.key);
    const i = list === undefined ? -1 : list.indexOf(conn);
    if (i >= 0) {
      list!.splice(i, 1);
      this.#idleCount--;
    }
    conn.destroy();
  }

  #take(key: string): Conn | undefined {
    const list = this.#idle.get(key);
    if (list === undefined || list.length === 0) return undefined;
    const now = this.#now();
    while (list.length > 0) {
      const conn = list.pop()!;
      this.#idleCount--;
      if (now < conn.expires) {
        conn.sock.ref();
        return conn;
      }
      conn.destroy();
    }
    return undefined;
  }

  #sweep(): void {
    const now = this.#now();
    for (const [key, list] of this.#idle) {
      const keep: Conn[] = [];
      for (const c of list) {
        if (now < c.expires) keep.push(c);
        else c.destroy();
      }
      this.#idleCount -= list.length - keep.length;
      if (keep.length === 0) this.#idle.delete(key);
      else this.#idle.set(key, keep);
    }
    if (this.#idleCount === 0) this.#stopSweeper();
  }

  #stopSweeper(): void {
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }
}
