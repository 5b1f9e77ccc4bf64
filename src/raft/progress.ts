/**
 * What the leader knows of one follower's log, and the flow control of what it sends it
 * (etcd's tracker/progress.go and inflights.go).
 *
 * - probe: we do not know where the follower's log ends; send one append, then wait for its answer
 *   (or a heartbeat answer) before sending the next.
 * - replicate: the follower is keeping up; stream appends optimistically (pipelining), bounded by
 *   the in-flight count and bytes so a slow follower cannot make the leader buffer without limit.
 * - snapshot: a snapshot is being streamed to it; send nothing else until that ends.
 */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export interface FlowLimits {
  maxInflightMsgs: number;
  maxInflightBytes: number;
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** In probe state: an append is out and unanswered. */
  probeSent = false;
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /** Last index and size of each append in flight, oldest first. */
  private inflight: { index: number; bytes: number }[] = [];
  private inflightBytes = 0;
  private readonly limits: FlowLimits;

  constructor(next: number, limits: FlowLimits) {
    this.next = next;
    this.limits = limits;
  }

  becomeProbe(): void {
    // After a snapshot, the follower's log starts right after it (unless it already told us more).
    const from =
      this.state === 'snapshot' ? Math.max(this.match + 1, this.pendingSnapshot + 1) : this.match + 1;
    this.reset('probe');
    this.next = from;
  }

  becomeReplicate(): void {
    this.reset('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(index: number): void {
    this.reset('snapshot');
    this.pendingSnapshot = index;
  }

  private reset(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflight = [];
    this.inflightBytes = 0;
  }

  /** Whether the leader must hold off sending appends. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return (
          this.inflight.length >= this.limits.maxInflightMsgs ||
          this.inflightBytes >= this.limits.maxInflightBytes
        );
      case 'snapshot':
        return true;
    }
  }

  /** Records an append carrying entries up to `lastIndex` (`bytes` in total) as sent. */
  sentEntries(lastIndex: number, count: number, bytes: number): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        this.next = lastIndex + 1;
        this.inflight.push({ index: lastIndex, bytes });
        this.inflightBytes += bytes;
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  /** The follower answered a heartbeat: it is reachable, so let at least one more append go. */
  onHeartbeatResp(): void {
    this.probeSent = false;
    if (this.state === 'replicate' && this.isPaused() && this.inflight.length > 0) {
      this.inflightBytes -= this.inflight[0].bytes;
      this.inflight.shift();
    }
  }

  /** A success answer up to `index`; returns whether it told us something new. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (index > this.match) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    while (this.inflight.length > 0 && this.inflight[0].index <= index) {
      this.inflightBytes -= this.inflight[0].bytes;
      this.inflight.shift();
    }
    return updated;
  }

  /**
   * A rejection of the append whose prevIndex was `rejected`; `probeFrom` is where the leader
   * computed the logs may agree. Returns false when the rejection is stale (already superseded).
   */
  maybeDecrTo(rejected: number, probeFrom: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, probeFrom + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }
}
