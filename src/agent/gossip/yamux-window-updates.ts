/**
 * Yamux window updates at half a window, as hashicorp/yamux (Serf's and Consul's) sends them.
 *
 * js-libp2p-yamux answers every data frame it receives with a window-update frame, so each
 * gossipsub message costs a second frame the other way: another noise encryption, another TCP
 * write, another wake-up and decryption at the sender. A CPU profile of a join seed at N = 50 put
 * ~10% of its busy time in sending those updates. The yamux spec leaves the timing to the receiver;
 * Go's implementation holds an update back until at least half the window has been consumed
 * (`sendWindowUpdate`: `delta < max/2 && flags == 0` → nothing). The sender then still has half a
 * window of credit when the update leaves, so a stream that keeps up never stalls.
 *
 * The library has no option for this, so the stream class's method is wrapped once per process:
 * an update that carries no flags (SYN/ACK ride on window updates when a stream opens) and returns
 * less than half the window is skipped; anything else runs the library's own logic. The fields
 * read here are checked when the wrapper is installed, so a library change that renames them
 * fails loudly (test/gossip/yamux-window-updates.test.ts), not by silently changing behaviour.
 */

import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream';

/** The parts of a yamux stream the wrapper reads (not all public in the library's types). */
interface WindowFields {
  state: StreamState;
  recvWindow: number;
  recvWindowCapacity: number;
  sendWindowUpdate(): void;
}

let installed = false;

/** Installs the half-window rule for every yamux stream of this process (idempotent). */
export function installHalfWindowUpdates(): void {
  if (installed) return;
  const proto = YamuxStream.prototype as unknown as WindowFields;
  const original = proto.sendWindowUpdate;
  if (
    typeof original !== 'function' ||
    StreamState.Init === undefined ||
    StreamState.SYNReceived === undefined
  ) {
    throw new Error(
      '@chainsafe/libp2p-yamux changed: YamuxStream.sendWindowUpdate or StreamState is missing',
    );
  }
  proto.sendWindowUpdate = function sendWindowUpdateAtHalf(this: WindowFields) {
    // Init and SYNReceived: this update carries SYN or ACK and must go. Paused: the library's own
    // bookkeeping. Otherwise only once half the window (or more) has been consumed.
    const carriesFlags = this.state === StreamState.Init || this.state === StreamState.SYNReceived;
    if (!carriesFlags && this.state !== StreamState.Paused) {
      if (typeof this.recvWindow !== 'number' || typeof this.recvWindowCapacity !== 'number') {
        throw new Error('@chainsafe/libp2p-yamux changed: a stream has no recvWindow/recvWindowCapacity');
      }
      if (this.recvWindow - this.recvWindowCapacity < this.recvWindow / 2) return;
    }
    original.call(this);
  };
  installed = true;
}
