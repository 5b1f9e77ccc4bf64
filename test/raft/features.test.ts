/**
 * What RaftCore adds to the paper's algorithm (mostly from the Raft thesis and etcd-io/raft): PreVote,
 * CheckQuorum, ReadIndex (safe and lease), leadership transfer, flow control, NotLeaderError, and the
 * handling of stale, misaddressed and foreign messages.
 */
import test from 'ava';
import {
  ConfigChangeError,
  NotLeaderError,
  ProposalDroppedError,
  TransferInProgressError,
} from '../../src/raft/errors.ts';
import type { AppendMessage, Message, VoteRespMessage } from '../../src/raft/types.ts';
import {
  appendMsg,
  type CoreTuning,
  enc,
  heartbeatMsg,
  type Network as Net,
  Network,
  normalEntry,
  voteMsg,
} from './harness.ts';

const ET = 10;
const DEFAULTS: CoreTuning = { electionTicks: ET, heartbeatTicks: 1 };

const isAppend = (m: Message): m is AppendMessage => m.type === 'append';
const isVoteResp = (m: Message): m is VoteRespMessage => m.type === 'voteResp';

function cluster3(options: CoreTuning = DEFAULTS, extra: { address?: (id: string) => string } = {}): Net {
  const net = Network.create(['a', 'b', 'c'], { options, ...extra });
  net.elect('a');
  net.tickAll(1);
  return net;
}

function progressOf(net: Net, leader: string, id: string) {
  const p = net.status(leader).progress.find((x) => x.id === id);
  if (!p) throw new Error(`${leader} has no progress for ${id}`);
  return p;
}

/** Appends carrying entries from `from` to `to` emitted after `mark`. */
function appendsWithEntries(net: Net, from: string, to: string, mark = 0): AppendMessage[] {
  return net.sent
    .slice(mark)
    .filter(isAppend)
    .filter((m) => m.from === from && m.to === to && m.entries.length > 0);
}

// =================================================================================================
// PreVote (thesis §9.6)
// =================================================================================================

test('PreVote: a pre-candidate keeps its term and vote, and moves to term+1 only after winning the pre-vote', (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: DEFAULTS });
  const a = net.core('a');
  a.campaign();
  const out = net.flush();
  t.is(a.role, 'precandidate');
  t.is(a.term, 1);
  t.is(a.vote, '');
  t.deepEqual(net.node('a').durable.hardState, { term: 1, vote: '', commit: 0 }, 'nothing persisted');
  const pre = out.filter((m) => m.type === 'vote');
  t.is(pre.length, 2);
  t.true(pre.every((m) => m.type === 'vote' && m.pre && m.term === 2));
  net.stabilize();
  t.is(a.role, 'leader');
  t.is(a.term, 2, 'exactly one term bump');
  for (const id of ['b', 'c']) t.is(net.core(id).term, 2);
});

test('PreVote: an isolated server does not raise its term, and rejoining does not depose the leader', (t) => {
  const net = cluster3(DEFAULTS);
  const term = net.core('a').term;
  net.isolate('c');
  const mark = net.sent.length;
  net.tickAll(10 * ET);
  const fromC = net.sent.slice(mark).filter((m) => m.from === 'c' && m.type === 'vote');
  t.true(fromC.length > 0, 'c did try to get elected');
  t.true(
    fromC.every((m) => m.type === 'vote' && m.pre),
    'but only with pre-votes',
  );
  t.is(net.core('c').term, term, 'its term stayed');
  t.is(net.node('c').durable.hardState.term, term);
  net.heal();
  net.tickAll(5 * ET);
  t.is(net.leader(), 'a');
  for (const id of net.ids()) {
    t.is(net.core(id).term, term, `${id} still in term ${term}`);
    t.is(net.core(id).lead, 'a');
  }
  t.is(net.leadersByTerm.size, 1);
});

test("PreVote: a lagging server's pre-votes are refused, so it cannot disrupt the leader even without CheckQuorum", (t) => {
  const net = cluster3({ ...DEFAULTS, checkQuorum: false });
  const term = net.core('a').term;
  net.isolate('c');
  net.propose('a', 'x');
  net.tickAll(10 * ET);
  t.is(net.core('c').term, term);
  net.heal();
  // c rejoins and campaigns before hearing from a: without CheckQuorum nobody is "in lease", so only the
  // log comparison stands between c and a disruptive election.
  const mark = net.sent.length;
  net.core('c').campaign();
  net.stabilize();
  const answers = net.sent
    .slice(mark)
    .filter(isVoteResp)
    .filter((m) => m.to === 'c');
  t.deepEqual(
    answers.map((m) => [m.from, m.pre, m.granted]).sort(),
    [
      ['a', true, false],
      ['b', true, false],
    ],
    'a and b refused c: its log lacks x',
  );
  t.is(net.core('c').term, term);
  net.tickAll(5 * ET);
  t.is(net.leader(), 'a');
  for (const id of net.ids()) t.is(net.core(id).term, term);
});

test('PreVote: a stale leader learns the new term from the rejection of its heartbeats and steps down', (t) => {
  const net = cluster3({ ...DEFAULTS, checkQuorum: false });
  net.isolate('a');
  net.elect('b');
  const term = net.core('b').term;
  t.is(net.core('a').role, 'leader', 'without CheckQuorum, a does not notice');
  t.true(net.core('a').term < term);
  net.heal();
  // Only a's own traffic can tell it: b's messages to a are lost.
  net.drop('b', 'a');
  net.tick('a', 1);
  t.is(net.core('a').role, 'follower');
  t.is(net.core('a').term, term);
});

// =================================================================================================
// CheckQuorum (thesis §6.2, §4.2.3)
// =================================================================================================

test('CheckQuorum: a leader cut off from the majority steps down within two election timeouts', (t) => {
  const net = cluster3(DEFAULTS);
  net.isolate('a');
  const ticks = net.tickUntil(() => net.core('a').role !== 'leader', 2 * ET);
  t.true(ticks <= 2 * ET, `stepped down after ${ticks} ticks`);
  t.is(net.core('a').role, 'follower');
  net.tickUntil(() => net.leader() === 'b' || net.leader() === 'c', 5 * ET);
  t.is(net.leaders().length, 1, 'only the majority side has a leader');
});

test('CheckQuorum: a leader that keeps hearing from a majority stays leader', (t) => {
  const net = cluster3(DEFAULTS);
  const term = net.core('a').term;
  net.isolate('c');
  net.tickAll(20 * ET);
  t.is(net.core('a').role, 'leader');
  t.is(net.core('a').term, term);
});

test('CheckQuorum: servers that heard from the leader within an election timeout ignore vote requests', (t) => {
  const net = cluster3(DEFAULTS);
  const term = net.core('a').term;
  const bVote = net.core('b').vote;
  for (const to of ['a', 'b']) {
    for (const pre of [false, true]) {
      net.core(to).stepMessage(voteMsg('c', to, term + 5, 1000, term + 4, { pre }));
    }
  }
  const out = net.flush();
  t.deepEqual(
    out.filter((m) => m.to === 'c' && m.type === 'voteResp'),
    [],
    'no answer at all',
  );
  t.is(net.core('a').role, 'leader');
  for (const id of ['a', 'b']) t.is(net.core(id).term, term);
  t.is(net.core('b').lead, 'a');
  t.is(net.core('b').vote, bVote, 'b did not vote for c');
});

test('CheckQuorum: once the lease has expired, a vote request is considered again', (t) => {
  const net = cluster3(DEFAULTS);
  const term = net.core('a').term;
  net.crash('a');
  const b = net.core('b');
  for (let i = 0; i < ET; i++) b.tick();
  // b may have started a pre-vote meanwhile; what matters is that it now answers vote requests.
  b.stepMessage(voteMsg('c', 'b', term + 5, 1000, term + 4));
  const out = net.flush();
  t.true(out.filter(isVoteResp).some((m) => m.to === 'c' && m.granted));
  t.is(b.term, term + 5);
});

// =================================================================================================
// ReadIndex (thesis §6.4)
// =================================================================================================

test('ReadIndex (safe): the leader answers after a heartbeat round confirms it, with index = commit', (t) => {
  const net = cluster3(DEFAULTS);
  const x = net.propose('a', 'x');
  const a = net.core('a');
  a.readIndex(1);
  const out = net.flush();
  t.deepEqual(net.node('a').readStates, [], 'not before a quorum confirms the leadership');
  const hb = out.filter((m) => m.type === 'heartbeat' && m.readCtx > 0);
  t.deepEqual(hb.map((m) => m.to).sort(), ['b', 'c']);
  net.stabilize();
  t.deepEqual(net.node('a').readStates, [{ readCtx: 1, index: a.log.committed }]);
  t.true(a.log.committed >= x.index, 'the read point covers every write committed before the request');
});

test('ReadIndex (safe): a read is confirmed only by heartbeats sent after it was issued', (t) => {
  const net = cluster3(DEFAULTS);
  const a = net.core('a');
  a.readIndex(1);
  net.flush(); // round for read 1 goes out
  a.readIndex(2);
  net.deliverPending(); // followers get round 1 only
  net.flush(); // their answers to round 1 are queued; so is a's round for read 2
  net.deliverPending(); // a hears round 1 answers
  net.flush();
  t.deepEqual(
    net.node('a').readStates.map((r) => r.readCtx),
    [1],
    'answers to a heartbeat sent before read 2 do not confirm it',
  );
  net.stabilize();
  t.deepEqual(
    net.node('a').readStates.map((r) => r.readCtx),
    [1, 2],
  );
});

test('ReadIndex (safe): one follower is enough to confirm in a cluster of three', (t) => {
  const net = cluster3(DEFAULTS);
  net.isolate('c');
  net.core('a').readIndex(9);
  net.stabilize();
  t.deepEqual(net.node('a').readStates, [{ readCtx: 9, index: net.core('a').log.committed }]);
});

test('ReadIndex (safe): an isolated leader never completes a read, and fails it (index 0) when it steps down', (t) => {
  const net = cluster3(DEFAULTS);
  net.isolate('a');
  net.core('a').readIndex(1);
  net.stabilize();
  net.tickAll(ET - 1);
  t.deepEqual(net.node('a').readStates, [], 'no heartbeat quorum, no answer');
  // Meanwhile the others elect a new leader, which commits writes a would not see.
  net.tickUntil(() => net.core('a').role !== 'leader', 2 * ET);
  t.deepEqual(net.node('a').readStates, [{ readCtx: 1, index: 0 }]);
});

test("ReadIndex: a follower forwards the request and receives the leader's read index", (t) => {
  const net = cluster3(DEFAULTS);
  net.propose('a', 'x');
  net.core('b').readIndex(7);
  const fwd = net.flush().filter((m) => m.type === 'readIndex');
  t.is(fwd.length, 1);
  t.is(fwd[0].to, 'a');
  net.stabilize();
  t.deepEqual(net.node('b').readStates, [{ readCtx: 7, index: net.core('a').log.committed }]);
  t.deepEqual(net.node('a').readStates, []);
});

test('ReadIndex: a server that knows no leader refuses at once (index 0)', (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: DEFAULTS });
  net.core('a').readIndex(3);
  net.flush();
  t.deepEqual(net.node('a').readStates, [{ readCtx: 3, index: 0 }]);
});

test('ReadIndex (lease): the leader answers at once, without a heartbeat round', (t) => {
  const net = cluster3({ ...DEFAULTS, readMode: 'lease' });
  net.propose('a', 'x');
  const a = net.core('a');
  a.readIndex(1);
  const out = net.flush();
  t.deepEqual(net.node('a').readStates, [{ readCtx: 1, index: a.log.committed }]);
  t.false(out.some((m) => m.type === 'heartbeat' && m.readCtx > 0));
});

test('ReadIndex (lease): a leader cut off from the majority stops serving lease reads before a new leader can commit', (t) => {
  // Thesis §6.4.1: the lease must run out before the rest of the cluster can elect a new leader, so no
  // clock drift at all (every server ticks together here) is needed for a lease read to be safe.
  const net = cluster3({ ...DEFAULTS, readMode: 'lease' });
  net.isolate('a');
  net.tickUntil(() => net.leaders().some((id) => id !== 'a'), 5 * ET);
  const nl = net.leaders().find((id) => id !== 'a')!;
  const w = net.propose(nl, 'w');
  t.is(net.core(nl).log.committed, w.index, 'the new leader committed w');
  // A client that saw w acknowledged now reads through a.
  net.core('a').readIndex(1);
  net.flush();
  const stale = net.node('a').readStates.filter((r) => r.index > 0 && r.index < w.index);
  t.deepEqual(stale, [], `a (still ${net.core('a').role}) must not answer with a read point that misses w`);
});

test('ReadIndex (lease): once a leader has sent TimeoutNow, it no longer serves lease reads', (t) => {
  // The transfer target's vote requests bypass the followers' leases, so the old leader's lease ends here.
  const net = cluster3({ ...DEFAULTS, readMode: 'lease' });
  net.hold((m) => m.from === 'b' && m.to === 'a'); // a does not hear of b's election yet
  net.core('a').transferLeadership('b');
  net.stabilize();
  t.is(net.core('b').role, 'leader');
  const w = net.propose('b', 'w');
  t.is(net.core('b').log.committed, w.index);
  net.core('a').readIndex(1);
  net.flush();
  const stale = net.node('a').readStates.filter((r) => r.index > 0 && r.index < w.index);
  t.deepEqual(stale, [], 'a must not answer with a read point that misses w');
});

test('ReadIndex: a new leader answers reads only after it has committed an entry of its term (§8)', (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: DEFAULTS });
  net.dropIf((m) => m.type === 'append' && m.from === 'a');
  net.elect('a');
  const a = net.core('a');
  t.true(a.log.committed < a.log.lastIndex(), 'the no-op is not committed');
  a.readIndex(1);
  net.stabilize();
  t.deepEqual(net.node('a').readStates, []);
  net.heal();
  net.tickAll(1);
  t.is(a.log.committed, a.log.lastIndex());
  t.deepEqual(net.node('a').readStates, [{ readCtx: 1, index: a.log.committed }]);
  t.is(a.log.term(net.node('a').readStates[0].index), a.term);
});

// =================================================================================================
// Leadership transfer (thesis §3.10)
// =================================================================================================

test('Early messages: a leader hands out new appends before the Ready that writes their entries', (t) => {
  const net = cluster3(DEFAULTS);
  net.stabilize();
  const a = net.core('a');
  const x = a.propose(enc('x'));
  const early = a.takeEarlyMessages();
  t.deepEqual(
    early
      .filter(isAppend)
      .map((m) => `${m.to}:${m.entries.map((e) => e.index).join(',')}`)
      .sort(),
    [`b:${x.index}`, `c:${x.index}`],
  );
  t.true(early.every((m) => m.type === 'append' || m.type === 'heartbeat'));
  const rd = a.ready();
  t.deepEqual(
    rd.entries.map((e) => e.index),
    [x.index],
    'the next Ready still writes the entry',
  );
  t.false(
    rd.messages.some((m) => isAppend(m) && m.entries.length > 0),
    'and does not send it again',
  );
  t.deepEqual(net.core('b').takeEarlyMessages(), [], 'a follower has nothing to send early');
});

test('Early commits: what both followers wrote is handed out while the leader still writes it', (t) => {
  const net = cluster3(DEFAULTS);
  net.stabilize();
  const a = net.core('a');
  const x = a.propose(enc('x'));
  const appends = a.takeEarlyMessages().filter(isAppend);
  const rd = a.ready(); // the leader's own write of x begins, and is slow
  t.deepEqual(
    rd.entries.map((e) => e.index),
    [x.index],
  );
  t.deepEqual(a.takeEarlyCommitted(), [], 'nobody has written x yet');
  // Each follower writes x and answers.
  const acks = ['b', 'c'].map((id) => {
    const f = net.core(id);
    for (const m of appends.filter((m) => m.to === id)) f.stepMessage(m);
    const frd = f.ready();
    f.advance(frd);
    return frd.messages.filter((m) => m.to === 'a');
  });
  for (const m of acks[0]) a.stepMessage(m);
  t.deepEqual(a.takeEarlyCommitted(), [], 'one follower and a leader that has not written x are no majority');
  for (const m of acks[1]) a.stepMessage(m);
  t.deepEqual(
    a.takeEarlyCommitted().map((e) => e.index),
    [x.index],
    'both followers are',
  );
  t.deepEqual(a.takeEarlyCommitted(), [], 'handed out once');
  a.advance(rd);
  t.is(a.log.applied, x.index, 'the write done, applied catches up');
  t.false(
    a.ready().committed.some((e) => e.index === x.index),
    'the next Ready does not carry x again',
  );
});

test('Leadership transfer: the target becomes leader at term+1', (t) => {
  const net = cluster3(DEFAULTS);
  const term = net.core('a').term;
  net.propose('a', 'x');
  net.core('a').transferLeadership('b');
  const out = net.flush();
  t.true(out.some((m) => m.type === 'timeoutNow' && m.to === 'b'));
  net.stabilize();
  t.is(net.core('b').role, 'leader');
  t.is(net.core('b').term, term + 1);
  t.is(net.core('a').role, 'follower');
  t.is(net.core('a').lead, 'b');
  t.is(net.core('c').lead, 'b');
  const y = net.propose('b', 'y');
  t.is(net.core('b').log.committed, y.index);
});

test('Leadership transfer: proposals are refused while a transfer is in progress', (t) => {
  const net = cluster3(DEFAULTS);
  net.isolate('c');
  const a = net.core('a');
  a.transferLeadership('c');
  net.stabilize();
  t.is(a.role, 'leader');
  t.is(a.status().leadTransferee, 'c');
  t.throws(() => a.propose(enc('x')), { instanceOf: TransferInProgressError });
  t.throws(() => a.proposeConfigChange({ op: 'remove', id: 'b' }), { instanceOf: TransferInProgressError });
});

test('Leadership transfer: a lagging target is caught up before it is told to campaign', (t) => {
  const net = cluster3(DEFAULTS);
  const term = net.core('a').term;
  const slow = net.hold((m) => m.type === 'append' && m.to === 'c');
  net.propose('a', 'x');
  net.propose('a', 'y');
  const last = net.core('a').log.lastIndex();
  net.core('a').transferLeadership('c');
  net.stabilize();
  t.false(
    net.sent.some((m) => m.type === 'timeoutNow'),
    'no TimeoutNow to a target that lacks entries',
  );
  t.is(net.core('a').role, 'leader');
  slow.release();
  net.stabilize();
  t.true(net.sent.some((m) => m.type === 'timeoutNow' && m.to === 'c'));
  t.is(net.core('c').role, 'leader');
  t.is(net.core('c').term, term + 1);
  t.true(net.core('c').log.lastIndex() > last, 'c holds x, y and its own no-op');
  net.tickAll(1);
  t.deepEqual(net.node('c').fsm, ['x', 'y']);
});

test('Leadership transfer: aborted after an election timeout when the target is unreachable', (t) => {
  const net = cluster3(DEFAULTS);
  net.isolate('c');
  const a = net.core('a');
  a.transferLeadership('c');
  net.tickAll(1);
  t.throws(() => a.propose(enc('x')), { instanceOf: TransferInProgressError }, 'still trying after a tick');
  net.tickAll(ET);
  t.is(a.role, 'leader');
  t.is(a.status().leadTransferee, '');
  const x = net.propose('a', 'x');
  t.is(a.log.committed, x.index);
});

test('Leadership transfer: only a leader transfers, and only to a voter', (t) => {
  const net = cluster3(DEFAULTS);
  t.throws(() => net.core('b').transferLeadership('c'), { instanceOf: NotLeaderError });
  net.add('d');
  net.core('a').proposeConfigChange({ op: 'addNonvoter', id: 'd', address: 'd' });
  net.stabilize();
  t.throws(() => net.core('a').transferLeadership('d'), { instanceOf: ConfigChangeError });
  t.is(net.core('a').status().leadTransferee, '');
});

// =================================================================================================
// Flow control
// =================================================================================================

test('Flow control: at most maxInflightMsgs appends are in flight to a silent follower; answers resume sending', (t) => {
  const net = cluster3({ ...DEFAULTS, maxInflightMsgs: 3 });
  t.is(progressOf(net, 'a', 'c').state, 'replicate');
  const acks = net.hold((m) => m.type === 'appendResp' && m.from === 'c' && m.to === 'a');
  const mark = net.sent.length;
  for (let i = 0; i < 10; i++) net.propose('a', `v${i}`);
  t.is(appendsWithEntries(net, 'a', 'c', mark).length, 3, 'sending to c paused at 3 in flight');
  t.is(appendsWithEntries(net, 'a', 'b', mark).length, 10, 'b, which answers, got every proposal');
  t.is(net.core('a').log.committed, net.core('a').log.lastIndex(), 'a and b commit regardless');
  const mark2 = net.sent.length;
  acks.release();
  net.stabilize();
  t.true(appendsWithEntries(net, 'a', 'c', mark2).length > 0, 'answers reopened the window');
  t.is(net.core('c').log.lastIndex(), net.core('a').log.lastIndex());
});

test('Flow control: maxInflightBytes bounds the bytes in flight to a follower', (t) => {
  const net = cluster3({ ...DEFAULTS, maxInflightBytes: 100 });
  const acks = net.hold((m) => m.type === 'appendResp' && m.from === 'c' && m.to === 'a');
  const mark = net.sent.length;
  for (let i = 0; i < 6; i++) net.propose('a', 'x'.repeat(50));
  // Each entry counts 74 bytes: the second append reaches the limit.
  t.is(appendsWithEntries(net, 'a', 'c', mark).length, 2);
  acks.release();
  net.stabilize();
  t.is(net.core('c').log.lastIndex(), net.core('a').log.lastIndex());
});

test('Flow control: in probe state a single append is outstanding until the follower answers', (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: DEFAULTS });
  net.isolate('c');
  net.elect('a');
  for (let i = 0; i < 5; i++) net.propose('a', `v${i}`);
  t.is(progressOf(net, 'a', 'c').state, 'probe');
  t.is(appendsWithEntries(net, 'a', 'c').length, 1, 'only the first probe');
});

test('Flow control: proposals are refused with ProposalDroppedError beyond maxUncommittedBytes', (t) => {
  const net = cluster3({ ...DEFAULTS, maxUncommittedBytes: 200 });
  const acks = net.hold((m) => m.type === 'appendResp' && m.to === 'a');
  const a = net.core('a');
  a.propose(new Uint8Array(100));
  t.throws(() => a.propose(new Uint8Array(100)), { instanceOf: ProposalDroppedError });
  acks.release();
  net.stabilize();
  t.notThrows(() => a.propose(new Uint8Array(100)), 'accepted again once the backlog committed');
});

// =================================================================================================
// NotLeaderError
// =================================================================================================

test('Proposals on a follower throw NotLeaderError naming the leader and its address', (t) => {
  const net = cluster3(DEFAULTS, { address: (id) => `${id}.example:8300` });
  const err = t.throws(() => net.core('b').propose(enc('x')), { instanceOf: NotLeaderError });
  t.is(err?.leaderId, 'a');
  t.is(err?.leaderAddress, 'a.example:8300');
  const err2 = t.throws(() => net.core('c').proposeConfigChange({ op: 'remove', id: 'b' }), {
    instanceOf: NotLeaderError,
  });
  t.is(err2?.leaderId, 'a');
  t.is(err2?.leaderAddress, 'a.example:8300');
});

test('Proposals on a server that knows no leader throw NotLeaderError with no leader', (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: DEFAULTS });
  const err = t.throws(() => net.core('a').propose(enc('x')), { instanceOf: NotLeaderError });
  t.is(err?.leaderId, '');
  t.is(err?.leaderAddress, '');
});

// =================================================================================================
// Bad input
// =================================================================================================

test('Messages from a stale term are ignored', (t) => {
  const net = cluster3(DEFAULTS);
  net.core('a').transferLeadership('b');
  net.stabilize();
  const c = net.core('c');
  const term = c.term;
  t.is(c.lead, 'b');
  const before = c.status();
  const entries = net.entries('c');
  const last = c.log.lastIndex();
  c.stepMessage(
    appendMsg('a', 'c', term - 1, last, c.log.lastTerm(), [normalEntry(last + 1, term - 1)], last + 1),
  );
  c.stepMessage(heartbeatMsg('a', 'c', term - 1, last + 1));
  c.stepMessage(voteMsg('a', 'c', term - 1, 1000, term - 1));
  c.stepMessage({ type: 'timeoutNow', from: 'a', to: 'c', term: term - 1 });
  const out = net.flush();
  t.deepEqual(c.status(), before);
  t.deepEqual(net.entries('c'), entries);
  t.false(
    out.some((m) => m.type === 'appendResp' && !m.reject),
    'no append accepted',
  );
  t.false(
    out.some((m) => m.type === 'voteResp' && m.granted),
    'no vote granted',
  );
  t.false(
    out.some((m) => m.type === 'vote'),
    'no election started',
  );
});

test('Messages addressed to another server, or claiming to come from this one, are dropped', (t) => {
  const net = cluster3(DEFAULTS);
  const b = net.core('b');
  const before = b.status();
  const term = b.term;
  b.stepMessage(appendMsg('a', 'c', term + 1, 1, 1, [normalEntry(2, term + 1)], 2));
  b.stepMessage(voteMsg('c', 'zz', term + 3, 1000, term + 2));
  b.stepMessage(heartbeatMsg('b', 'b', term + 1));
  t.false(b.hasReady());
  t.deepEqual(b.status(), before);
});

test('§4.2.3 a removed server cannot disrupt a cluster with a live leader: voters in lease ignore it', (t) => {
  const net = cluster3(DEFAULTS);
  const b = net.core('b');
  const term = b.term;
  b.stepMessage(voteMsg('zz', 'b', term + 5, 1000, term + 4, { pre: true }));
  b.stepMessage(voteMsg('zz', 'b', term + 5, 1000, term + 4));
  const out = net.flush().filter(isVoteResp);
  t.deepEqual(out, [], 'not even answered: answering would not help a removed server');
  t.is(b.term, term);
  t.is(b.vote, 'a');
  t.is(net.core('a').role, 'leader');
});

test('§4.1 a voter answers candidates without consulting its configuration (it may be stale)', (t) => {
  // A lagging voter may not yet know a server was added; refusing its vote can deadlock elections.
  const net = Network.create(['a', 'b', 'c'], { options: DEFAULTS });
  const a = net.core('a');
  a.stepMessage(voteMsg('zz', 'a', 2, 1000, 5));
  const out = net.flush().filter(isVoteResp);
  t.is(out.length, 1);
  t.true(out[0].granted);
  t.is(a.vote, 'zz');
  t.is(net.node('a').durable.hardState.vote, 'zz');
});
