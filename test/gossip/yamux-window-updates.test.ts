/**
 * The half-window rule for yamux window updates (src/agent/gossip/yamux-window-updates.ts), run
 * through the library's own stream class: a window update is held back until half the window
 * is consumed, and one that opens a stream (SYN/ACK) is never held back.
 */

import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream';
import test from 'ava';
import { installHalfWindowUpdates } from '../../src/agent/gossip/yamux-window-updates.ts';

/** What the library hands its muxer for a frame without data. */
interface Header {
  type: number;
  flag: number;
  length: number;
  streamID: number;
}

const WINDOW = 256 * 1024;
// The yamux spec's numbers (the library does not export its enums).
const WINDOW_UPDATE = 1;
const SYN = 1;
const ACK = 2;

/** A stream of the library's class with only the fields the window logic reads. */
function stream(state: StreamState, consumed: number): { s: YamuxStream; sent: Header[] } {
  const sent: Header[] = [];
  const s = Object.assign(Object.create(YamuxStream.prototype) as YamuxStream, {
    streamId: 7,
    state,
    recvWindow: WINDOW,
    recvWindowCapacity: WINDOW - consumed,
    maxStreamWindowSize: WINDOW,
    epochStart: Date.now(),
    getRTT: () => -1,
    sendFrame: (header: Header) => sent.push(header),
  });
  return { s, sent };
}

test('window updates wait for half a window; updates that open a stream go at once', (t) => {
  installHalfWindowUpdates();
  installHalfWindowUpdates(); // a second call changes nothing

  const small = stream(StreamState.Established, 1_000);
  small.s.sendWindowUpdate();
  t.deepEqual(small.sent, [], '1,000 bytes consumed of 256 KiB: no update');

  const half = stream(StreamState.Established, WINDOW / 2);
  half.s.sendWindowUpdate();
  t.is(half.sent.length, 1, 'half a window consumed: an update');
  t.like(half.sent[0], { type: WINDOW_UPDATE, flag: 0, length: WINDOW / 2, streamID: 7 });
  t.is((half.s as unknown as { recvWindowCapacity: number }).recvWindowCapacity, WINDOW, 'credit restored');

  const opening = stream(StreamState.Init, 0);
  opening.s.sendWindowUpdate();
  t.like(opening.sent[0], { type: WINDOW_UPDATE, flag: SYN });

  const accepting = stream(StreamState.SYNReceived, 10);
  accepting.s.sendWindowUpdate();
  t.like(accepting.sent[0], { type: WINDOW_UPDATE, flag: ACK, length: 10 });

  const paused = stream(StreamState.Paused, WINDOW);
  paused.s.sendWindowUpdate();
  t.deepEqual(paused.sent, [], 'a paused stream sends none (the library’s own rule)');
});
