/**
 * The Raft paper ("In Search of an Understandable Consensus Algorithm", Ongaro & Ousterhout) section by
 * section, one test per claim, in the manner of etcd-io/raft's raft_paper_test.go. §6 and §7 follow the
 * thesis's single-server membership changes and log compaction as RaftCore implements them.
 *
 * Every test runs on the deterministic harness, which also checks Election Safety, State Machine
 * Safety and Leader Completeness continuously (it throws a SafetyViolation on any breach).
 */
import test from 'ava';
import { bootstrapState } from '../../src/raft/core.ts';
import {
  ConfigChangeError,
  NotLeaderError,
  ProposalDroppedError,
  TransferInProgressError,
} from '../../src/raft/errors.ts';
import type { PersistedState } from '../../src/raft/storage.ts';
import type {
  AppendRespMessage,
  Entry,
  Message,
  VoteMessage,
  VoteRespMessage,
} from '../../src/raft/types.ts';
import { Prng } from '../support/prng.ts';
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
/** The algorithm as the paper describes it: no PreVote, no CheckQuorum. */
const PAPER: CoreTuning = { electionTicks: ET, heartbeatTicks: 1, preVote: false, checkQuorum: false };
/** RaftCore's defaults (PreVote and CheckQuorum on). */
const DEFAULTS: CoreTuning = { electionTicks: ET, heartbeatTicks: 1 };

const isVoteResp = (m: Message): m is VoteRespMessage => m.type === 'voteResp';
const isAppendResp = (m: Message): m is AppendRespMessage => m.type === 'appendResp';

/** The voteResp messages `from` sent to `to` among `msgs`. */
function voteResps(msgs: Message[], from: string, to: string): VoteRespMessage[] {
  return msgs.filter(isVoteResp).filter((m) => m.from === from && m.to === to);
}

function progressOf(net: Net, leader: string, id: string) {
  const p = net.status(leader).progress.find((x) => x.id === id);
  if (!p) throw new Error(`${leader} has no progress for ${id}`);
  return p;
}

/** Exactly one live leader, and every live node follows it in its term. */
function settled(net: Net): boolean {
  const ls = net.leaders();
  if (ls.length !== 1) return false;
  const l = net.core(ls[0]);
  return net
    .ids()
    .every((id) => net.node(id).down || (net.core(id).lead === ls[0] && net.core(id).term === l.term));
}

/** A fresh three-server cluster with `a` elected and every follower in replicate state. */
function cluster3(options: CoreTuning = DEFAULTS, seed = 1): Net {
  const net = Network.create(['a', 'b', 'c'], { seed, options });
  net.elect('a');
  net.tickAll(1);
  return net;
}

// =================================================================================================
// §5.1 Raft basics
// =================================================================================================

test('§5.1 a leader that sees a higher term reverts to follower and adopts the term', (t) => {
  const net = cluster3(PAPER);
  const a = net.core('a');
  a.stepMessage({
    type: 'appendResp',
    from: 'b',
    to: 'a',
    term: 7,
    index: 0,
    reject: true,
    hintIndex: 0,
    hintTerm: 0,
  });
  t.is(a.role, 'follower');
  t.is(a.term, 7);
  t.is(a.vote, '');
  net.stabilize();
  t.is(net.node('a').durable.hardState.term, 7, 'the new term is persisted');
});

test('§5.1 a candidate that sees a higher term reverts to follower', (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: PAPER });
  net.isolate('a');
  net.core('a').campaign();
  net.stabilize();
  t.is(net.core('a').role, 'candidate');
  net.core('a').stepMessage(heartbeatMsg('b', 'a', 9));
  t.is(net.core('a').role, 'follower');
  t.is(net.core('a').term, 9);
  t.is(net.core('a').lead, 'b');
});

test('§5.1 a vote request with a stale term is refused', (t) => {
  const net = cluster3(PAPER);
  const b = net.core('b');
  const term = b.term;
  const vote = b.vote;
  b.stepMessage(voteMsg('c', 'b', term - 1, 100, term - 1));
  const out = net.flush();
  t.false(voteResps(out, 'b', 'c').some((m) => m.granted));
  t.is(b.term, term);
  t.is(b.vote, vote);
  t.not(vote, 'c');
});

test('§5.1 (Figure 2) a stale RequestVote is answered false with the current term, and the candidate updates itself', (t) => {
  // RequestVote results: "term: currentTerm, for candidate to update itself"; receiver: "reply false if
  // term < currentTerm".
  const net = Network.create(['a', 'b', 'c'], { options: PAPER });
  net.isolate('b');
  for (let i = 0; i < 3; i++) net.core('b').campaign();
  net.stabilize();
  net.heal();
  t.is(net.core('b').term, 4);
  net.isolate('c');
  net.core('a').campaign(); // term 2 < b's term 4
  net.stabilize();
  const answer = voteResps(net.sent, 'b', 'a');
  t.is(answer.length, 1, 'b answers');
  t.false(answer[0]?.granted ?? true);
  t.is(answer[0]?.term, 4);
  t.is(net.core('a').term, 4, 'a learnt the current term');
  t.is(net.core('a').role, 'follower');
});

test('§5.1 (Figure 2) a stale AppendEntries is answered false with the current term, and the stale leader steps down', (t) => {
  // AppendEntries results: "term: currentTerm, for leader to update itself".
  const net = cluster3(PAPER);
  net.isolate('a');
  net.elect('b');
  const term = net.core('b').term;
  net.heal();
  // a, a stale leader that nobody else contacts (e.g. since removed), sends its heartbeats.
  net.dropIf((m) => m.to === 'a' && m.type !== 'appendResp');
  net.tick('a', 1);
  const answers = net.sent.filter(isAppendResp).filter((m) => m.to === 'a' && m.term === term);
  t.true(answers.length > 0, 'b and c answer');
  t.true(answers.every((m) => m.reject));
  net.heal();
  net.stabilize();
  t.is(net.core('a').role, 'follower');
  t.is(net.core('a').term, term);
});

// =================================================================================================
// §5.2 Leader election
// =================================================================================================

test('§5.2 servers start as followers, with no leader', (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: DEFAULTS });
  for (const id of net.ids()) {
    const s = net.status(id);
    t.is(s.role, 'follower');
    t.is(s.leader, '');
    t.is(s.vote, '');
    t.is(s.term, 1);
  }
});

test('§5.2 a follower that hears nothing for an election timeout becomes candidate: term+1, votes for itself, asks all', (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: PAPER });
  const a = net.core('a');
  for (let i = 0; i < ET - 1; i++) a.tick();
  t.is(a.role, 'follower', 'no election before the minimum election timeout');
  for (let i = ET - 1; i < 2 * ET - 1; i++) a.tick();
  t.is(a.role, 'candidate');
  t.is(a.term, 2);
  t.is(a.vote, 'a');
  const votes = net.flush().filter((m): m is VoteMessage => m.type === 'vote');
  t.deepEqual(votes.map((m) => m.to).sort(), ['b', 'c']);
  for (const v of votes) {
    t.is(v.term, 2);
    t.false(v.pre);
    t.is(v.lastIndex, 1);
    t.is(v.lastTerm, 1);
  }
  t.deepEqual(net.node('a').durable.hardState, { term: 2, vote: 'a', commit: 0 }, 'term and vote persisted');
});

test('§5.2 election timeouts are randomized in [electionTicks, 2*electionTicks)', (t) => {
  const seen = new Set<number>();
  for (let seed = 1; seed <= 100; seed++) {
    const net = Network.create(['a', 'b', 'c'], { seed, options: PAPER });
    const a = net.core('a');
    let ticks = 0;
    while (a.role === 'follower' && ticks < 10 * ET) {
      a.tick();
      ticks++;
    }
    t.true(ticks >= ET && ticks < 2 * ET, `seed ${seed}: campaigned after ${ticks} ticks`);
    seen.add(ticks);
  }
  t.true(seen.size >= ET / 2, `only ${seen.size} distinct timeouts over 100 seeds`);
});

test('§5.2 a candidate that wins votes from a majority becomes leader and sends heartbeats', (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: PAPER });
  net.crash('c');
  net.core('a').campaign();
  net.stabilize();
  t.is(net.core('a').role, 'leader', 'a and b are a majority of three');
  t.is(net.core('b').lead, 'a');
  const mark = net.sent.length;
  net.core('a').tick();
  net.flush();
  const hb = net.sent.slice(mark).filter((m) => m.type === 'heartbeat' && m.from === 'a');
  t.deepEqual(hb.map((m) => m.to).sort(), ['b', 'c']);
  t.true(hb.every((m) => m.term === 2));
});

test('§5.2 a candidate without a majority of votes does not become leader', (t) => {
  const net = Network.create(['a', 'b', 'c', 'd', 'e'], { options: PAPER });
  for (const id of ['c', 'd', 'e']) net.isolate(id);
  net.core('a').campaign();
  net.stabilize();
  t.is(net.core('a').role, 'candidate', 'two votes of five');
  t.is(net.leaders().length, 0);
});

test('§5.2 a candidate that receives AppendEntries from a leader of its own term returns to follower', (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: PAPER });
  net.isolate('a');
  net.core('a').campaign();
  net.stabilize();
  const a = net.core('a');
  t.is(a.role, 'candidate');
  t.is(a.term, 2);
  a.stepMessage(appendMsg('b', 'a', 2, 1, 1, [{ index: 2, term: 2, type: 'noop', data: new Uint8Array(0) }]));
  t.is(a.role, 'follower');
  t.is(a.term, 2);
  t.is(a.lead, 'b');
  t.is(a.log.lastIndex(), 2, 'and it accepts the entries');
});

test('§5.2 a candidate ignores AppendEntries from a leader of an older term', (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: PAPER });
  net.isolate('a');
  net.core('a').campaign();
  net.core('a').campaign();
  net.stabilize();
  const a = net.core('a');
  t.is(a.term, 3);
  a.stepMessage(appendMsg('b', 'a', 2, 1, 1, [normalEntry(2, 2)]));
  t.is(a.role, 'candidate');
  t.is(a.term, 3);
  t.is(a.log.lastIndex(), 1);
});

test('§5.2 split votes are resolved by randomized election timeouts', (t) => {
  for (let seed = 1; seed <= 50; seed++) {
    const net = Network.create(['a', 'b', 'c'], { seed, options: PAPER });
    for (const id of net.ids()) net.core(id).campaign();
    net.stabilize();
    t.is(net.leaders().length, 0, `seed ${seed}: everyone voted for itself, so nobody won`);
    const ticks = net.tickUntil(() => settled(net), 20 * ET);
    t.true(ticks <= 20 * ET);
    t.true(net.core(net.leaders()[0]).term >= 3);
  }
});

test('§5.2 from a cold start, exactly one leader emerges and everyone follows it (many seeds)', (t) => {
  for (const options of [PAPER, DEFAULTS]) {
    for (let seed = 1; seed <= 50; seed++) {
      const net = Network.create(['a', 'b', 'c', 'd', 'e'], { seed, options });
      net.tickUntil(() => settled(net), 30 * ET);
      t.is(net.leaders().length, 1);
    }
  }
});

test('§5.2 followers that keep hearing from the leader never start an election', (t) => {
  const net = cluster3(PAPER);
  const term = net.core('a').term;
  net.tickAll(30 * ET);
  t.is(net.leader(), 'a');
  for (const id of net.ids()) t.is(net.core(id).term, term);
  t.false(net.sent.some((m) => m.type === 'vote' && m.term > term));
});

test('§5.2 a server votes for at most one candidate per term, and the vote survives a restart', (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: PAPER });
  const b = net.core('b');
  b.stepMessage(voteMsg('a', 'b', 2, 1, 1));
  let out = net.flush();
  t.true(voteResps(out, 'b', 'a')[0]?.granted, 'first request of term 2 granted');
  t.deepEqual(
    net.node('b').durable.hardState,
    { term: 2, vote: 'a', commit: 0 },
    'vote persisted before answering',
  );

  b.stepMessage(voteMsg('c', 'b', 2, 1, 1));
  out = net.flush();
  t.false(voteResps(out, 'b', 'c')[0]?.granted ?? true, 'second candidate of term 2 refused');

  const b2 = net.restart('b');
  t.is(b2.term, 2);
  t.is(b2.vote, 'a');
  b2.stepMessage(voteMsg('c', 'b', 2, 5, 2));
  out = net.flush();
  t.false(voteResps(out, 'b', 'c')[0]?.granted ?? true, 'still refused after restart');
  b2.stepMessage(voteMsg('a', 'b', 2, 1, 1));
  out = net.flush();
  t.true(voteResps(out, 'b', 'a')[0]?.granted, 'a repeated request from the same candidate is granted again');
});

// =================================================================================================
// §5.3 Log replication
// =================================================================================================

test('§5.3 a new leader appends a no-op entry of its term and commits it', (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: DEFAULTS });
  net.elect('a');
  const a = net.core('a');
  const e = a.log.entryAt(2);
  t.is(e?.type, 'noop');
  t.is(e?.term, a.term);
  t.is(a.log.committed, 2);
});

test('§5.3 an entry is committed once the leader has replicated it on a majority', (t) => {
  const net = Network.create(['a', 'b', 'c', 'd', 'e'], { options: DEFAULTS });
  net.elect('a');
  net.tickAll(1);
  net.isolate('d');
  net.isolate('e');
  const at = net.propose('a', 'x');
  t.is(net.core('a').log.committed, at.index, 'three of five');
  for (const id of ['b', 'c']) t.is(net.core(id).log.term(at.index), at.term);
  for (const id of ['d', 'e']) t.is(net.core(id).log.lastIndex(), at.index - 1);
  t.deepEqual(net.node('a').fsm, ['x']);
});

test('§5.3 an entry stored on a minority is not committed', (t) => {
  const net = Network.create(['a', 'b', 'c', 'd', 'e'], { options: DEFAULTS });
  net.elect('a');
  net.tickAll(1);
  for (const id of ['c', 'd', 'e']) net.isolate(id);
  const at = net.propose('a', 'x');
  t.is(net.core('b').log.term(at.index), at.term, 'b stores it');
  t.true(net.core('a').log.committed < at.index, 'two of five is not a majority');
  t.true(net.core('b').log.committed < at.index);
  for (const id of net.ids()) t.deepEqual(net.node(id).fsm, []);
});

test('§5.3 every server applies the committed entries, in log order', (t) => {
  const net = cluster3(DEFAULTS);
  const want: string[] = [];
  for (let i = 0; i < 5; i++) {
    want.push(`one-${i}`);
    net.propose('a', `one-${i}`);
  }
  for (let i = 0; i < 5; i++) {
    want.push(`batch-${i}`);
    net.core('a').propose(enc(`batch-${i}`));
  }
  net.stabilize();
  net.tickAll(1);
  const last = net.core('a').log.lastIndex();
  for (const id of net.ids()) {
    const n = net.node(id);
    t.deepEqual(n.fsm, want, `${id} applied the commands in order`);
    t.deepEqual(
      n.applied.map((e) => e.index),
      Array.from({ length: last }, (_, i) => i + 1),
      `${id} applied every index once, in order`,
    );
  }
});

test('§5.3 followers learn the commit index from later AppendEntries and from heartbeats', (t) => {
  const net = cluster3(DEFAULTS);
  const x = net.propose('a', 'x');
  t.is(net.core('a').log.committed, x.index);
  net.tickAll(1);
  for (const id of ['b', 'c']) {
    t.is(net.core(id).log.committed, x.index, `${id} learnt the commit from a heartbeat`);
    t.deepEqual(net.node(id).fsm, ['x']);
  }
  const y = net.propose('a', 'y');
  net.propose('a', 'z');
  for (const id of ['b', 'c']) {
    t.true(net.core(id).log.committed >= y.index, `${id} learnt y's commit from the append that carried z`);
  }
});

test('§5.3 AppendEntries whose prevIndex/prevTerm the follower lacks is rejected, leaving the log alone', (t) => {
  const net = cluster3(PAPER);
  const b = net.core('b');
  const before = net.entries('b');
  b.stepMessage(appendMsg('a', 'b', b.term, 5, b.term, [normalEntry(6, b.term)], 6));
  const out = net.flush().filter(isAppendResp);
  t.is(out.length, 1);
  t.true(out[0].reject);
  t.deepEqual(net.entries('b'), before);
  b.stepMessage(appendMsg('a', 'b', b.term, 2, b.term - 1, [normalEntry(3, b.term)], 3));
  const out2 = net.flush().filter(isAppendResp);
  t.true(out2[0].reject, 'term mismatch at prevIndex');
  t.deepEqual(net.entries('b'), before);
});

test('§5.3 a follower commits only up to the last entry it knows to match the leader', (t) => {
  // b holds stale term-2 entries at 3 and 4. The term-3 leader's commit index is 3, but its append
  // only vouches for index 2: b's index 3 is not the leader's and must not be committed.
  const boot = bootstrapState({
    servers: ['a', 'b', 'c'].map((id) => ({ id, address: id, suffrage: 'voter' as const })),
  });
  const stale: PersistedState = {
    hardState: { term: 2, vote: 'a', commit: 1 },
    snapshot: null,
    entries: [
      ...boot.entries,
      normalEntry(2, 2, 'ok'),
      normalEntry(3, 2, 'stale-3'),
      normalEntry(4, 2, 'stale-4'),
    ],
  };
  const net = Network.create(['a', 'b', 'c'], { options: PAPER, initial: { b: stale } });
  const b = net.core('b');
  b.stepMessage(appendMsg('c', 'b', 3, 1, 1, [normalEntry(2, 2, 'ok')], 3));
  const resp = net.flush().filter(isAppendResp);
  t.false(resp[0].reject);
  t.is(resp[0].index, 2);
  t.is(b.log.committed, 2, 'min(leader commit, last new entry)');
  t.false(net.node('b').fsm.includes('stale-3'));
});

test("§5.3 a follower's conflicting uncommitted suffix is overwritten by the leader's log", (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: PAPER });
  net.elect('a');
  net.tickAll(1);
  // a, cut off, keeps appending entries of term 2 that nobody else sees.
  net.isolate('a');
  net.core('a').propose(enc('lost-1'));
  net.core('a').propose(enc('lost-2'));
  net.stabilize();
  t.deepEqual(net.logTerms('a'), [1, 2, 2, 2]);
  // b is elected in term 3 and appends its own entries at the same indexes.
  net.elect('b');
  net.propose('b', 'kept');
  t.deepEqual(net.logTerms('b'), [1, 2, 3, 3]);
  net.heal();
  net.tickAll(3);
  t.is(net.core('a').role, 'follower');
  t.deepEqual(net.logTerms('a'), [1, 2, 3, 3], "a's term-2 suffix was replaced");
  t.deepEqual(
    net.node('a').durable.entries.map((e) => e.term),
    [1, 2, 3, 3],
    'and the replacement reached its durable log',
  );
  t.deepEqual(net.node('a').fsm, ['kept']);
});

test('§5.3 a follower that missed entries is found by probing, caught up, then replicated to', (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: DEFAULTS });
  net.isolate('c');
  net.elect('a');
  for (let i = 0; i < 4; i++) net.propose('a', `v${i}`);
  t.is(progressOf(net, 'a', 'c').state, 'probe');
  t.is(net.core('c').log.lastIndex(), 1);
  net.heal();
  net.tickAll(2);
  const last = net.core('a').log.lastIndex();
  t.is(net.core('c').log.lastIndex(), last);
  t.deepEqual(net.logTerms('c'), net.logTerms('a'));
  const p = progressOf(net, 'a', 'c');
  t.is(p.state, 'replicate');
  t.is(p.match, last);
  t.deepEqual(net.node('c').fsm, ['v0', 'v1', 'v2', 'v3']);
});

test('§5.3 the leader retries lost AppendEntries until the follower stores every entry', (t) => {
  // "If followers crash or run slowly, or if network packets are lost, the leader retries AppendEntries
  // RPCs indefinitely ... until all followers eventually store all log entries."
  const net = cluster3(DEFAULTS);
  t.is(progressOf(net, 'a', 'c').state, 'replicate');
  net.dropIf((m) => m.type === 'append' && m.to === 'c');
  for (let i = 0; i < 3; i++) net.propose('a', `v${i}`);
  net.heal();
  // No new proposals: only the leader's heartbeats and retries can bring c up to date.
  net.tickAll(3 * ET);
  t.is(net.core('c').log.lastIndex(), net.core('a').log.lastIndex());
  t.deepEqual(net.node('c').fsm, ['v0', 'v1', 'v2']);
});

// =================================================================================================
// §5.4 Safety
// =================================================================================================

/** A two-voter cluster where `v` has the log [1@1, 2@2, 3@2] in term 2, and `c` asks for its vote. */
function voterWithLog(): Net {
  const boot = bootstrapState({
    servers: [
      { id: 'c', address: 'c', suffrage: 'voter' },
      { id: 'v', address: 'v', suffrage: 'voter' },
    ],
  });
  const v: PersistedState = {
    hardState: { term: 2, vote: '', commit: 1 },
    snapshot: null,
    entries: [
      ...boot.entries,
      { index: 2, term: 2, type: 'noop', data: new Uint8Array(0) },
      normalEntry(3, 2),
    ],
  };
  return Network.create(['c', 'v'], { options: PAPER, initial: { v } });
}

test('§5.4.1 a voter grants its vote only to a candidate whose log is at least as up-to-date', (t) => {
  const cases: { lastIndex: number; lastTerm: number; granted: boolean; why: string }[] = [
    { lastIndex: 3, lastTerm: 2, granted: true, why: 'identical logs' },
    { lastIndex: 4, lastTerm: 2, granted: true, why: 'same last term, longer' },
    { lastIndex: 2, lastTerm: 2, granted: false, why: 'same last term, shorter' },
    { lastIndex: 1, lastTerm: 3, granted: true, why: 'higher last term, however short' },
    { lastIndex: 9, lastTerm: 1, granted: false, why: 'lower last term, however long' },
  ];
  for (const c of cases) {
    const net = voterWithLog();
    net.core('v').stepMessage(voteMsg('c', 'v', 3, c.lastIndex, c.lastTerm));
    const resp = voteResps(net.flush(), 'v', 'c');
    t.is(resp.length, 1, c.why);
    t.is(resp[0].granted, c.granted, c.why);
    t.is(net.core('v').vote, c.granted ? 'c' : '', c.why);
  }
});

test('§5.4.1 a candidate whose log lacks committed entries cannot win; an up-to-date one can', (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: PAPER });
  net.elect('a');
  net.isolate('c');
  const x = net.propose('a', 'x');
  t.is(net.core('a').log.committed, x.index);
  // a disappears; c (missing x) and b (holding x) remain.
  net.heal();
  net.crash('a');
  for (let i = 0; i < 5; i++) {
    net.core('c').campaign();
    net.stabilize();
    t.not(net.core('c').role, 'leader', 'b refuses c, whose log lacks the committed x');
  }
  net.elect('b');
  t.is(net.core('b').log.term(x.index), x.term);
  t.false([...net.leadersByTerm.values()].includes('c'));
});

interface Figure8 {
  net: Net;
  /** The append that would give S3 index 3 (term 4), held back in the network. */
  held: { messages: Message[]; release(): void };
}

/**
 * Figure 8 (a)–(c) with five servers. RaftCore's bootstrap entry is index 1 (term 1), and the entry each
 * new leader appends is its no-op, so the paper's "index 2" is the term-2 leader's no-op.
 */
function figure8(t: { deepEqual: (a: unknown, b: unknown, m?: string) => void }): Figure8 {
  const ids = ['s1', 's2', 's3', 's4', 's5'];
  // One entry per append, so the old-term entry and the new one travel separately.
  const net = Network.create(ids, { options: { ...PAPER, maxMsgBytes: 1 } });

  // (a) S1 leads term 2; its index 2 reaches S2 only. Then S1 crashes.
  net.dropIf((m) => m.type === 'append' && m.from === 's1' && m.to !== 's2');
  net.elect('s1');
  net.heal();
  net.crash('s1');
  t.deepEqual(net.logTerms('s1'), [1, 2], '(a) S1');
  t.deepEqual(net.logTerms('s2'), [1, 2], '(a) S2');

  // (b) S5 is elected in term 3 by S3, S4 and itself, appends a different index 2, and crashes.
  net.dropIf((m) => m.type === 'append' && m.from === 's5');
  net.elect('s5');
  net.heal();
  net.crash('s5');
  t.deepEqual(net.logTerms('s5'), [1, 3], '(b) S5');
  t.deepEqual(net.logTerms('s3'), [1], '(b) S3');

  // (c) S1 restarts, is elected in term 4, and replicates its term-2 index 2 to S3: it is now stored on
  // a majority (S1, S2, S3). The append that would bring S3 the term-4 entry is delayed.
  net.restart('s1');
  net.dropIf((m) => m.type === 'append' && m.from === 's1' && m.to === 's4');
  const held = net.hold(
    (m) =>
      m.type === 'append' &&
      m.from === 's1' &&
      m.to === 's3' &&
      m.entries.some((e) => e.index === 3) &&
      net.core('s3').log.lastIndex() >= 2,
  );
  net.elect('s1');
  t.deepEqual(net.logTerms('s1'), [1, 2, 4], '(c) S1');
  t.deepEqual(net.logTerms('s3'), [1, 2], '(c) S3 now stores the term-2 entry');
  return { net, held };
}

test('§5.4.2 Figure 8 (c): a leader does not commit an entry of an earlier term by counting replicas', (t) => {
  const { net, held } = figure8(t);
  const s1 = net.core('s1');
  t.is(s1.term, 4);
  t.is(progressOf(net, 's1', 's2').match, 3);
  t.is(progressOf(net, 's1', 's3').match, 2, 'S1 knows S3 stores index 2');
  t.true(held.messages.length > 0);
  t.true(s1.log.committed < 2, 'index 2 (term 2) is on S1, S2, S3 yet must not be committed');
  for (const id of net.ids()) t.false(net.node(id).applied.some((e) => e.index === 2 && e.term === 2));

  // Once the term-4 entry is on a majority, it commits, and index 2 with it (§5.4.2: indirectly).
  held.release();
  net.stabilize();
  t.is(s1.log.committed, 3);
  net.tickAll(1);
  for (const id of ['s1', 's2', 's3']) {
    t.deepEqual(
      net.node(id).applied.map((e) => `${e.index}@${e.term}`),
      ['1@1', '2@2', '3@4'],
      `${id} applied the old entry together with the new one`,
    );
  }
});

test('§5.4.2 Figure 8 (d): the uncommitted old-term entry is overwritten by S5, and nobody ever applied it', (t) => {
  const { net } = figure8(t);
  // (d) S1 crashes again before its term-4 entry reaches S3; S5 restarts and wins term 5 with S3 and S4.
  net.crash('s1');
  net.restart('s5');
  net.elect('s5');
  t.is(net.core('s5').term, 5);
  net.tickAll(1);
  for (const id of ['s2', 's3', 's4', 's5']) {
    t.deepEqual(net.logTerms(id), [1, 3, 5], `${id} holds S5's log`);
  }
  for (const id of net.ids()) {
    t.false(
      net.node(id).applied.some((e) => e.index === 2 && e.term === 2),
      `${id} never applied the term-2 entry that (c) left uncommitted`,
    );
  }
});

const expectedRefusal = (err: unknown): boolean =>
  err instanceof ProposalDroppedError ||
  err instanceof TransferInProgressError ||
  err instanceof ConfigChangeError ||
  err instanceof NotLeaderError;

/** Every member of the current leader's configuration follows it in its term. */
function settledMembers(net: Net): boolean {
  const l = net.leader();
  if (!l) return false;
  const term = net.core(l).term;
  return net
    .status(l)
    .configuration.servers.every((s) => net.core(s.id).lead === l && net.core(s.id).term === term);
}

/**
 * Random partitions, crashes, restarts, proposals and compactions (and, with `membership`, single-server
 * membership changes among seven servers, leadership transfers and reads). The harness checks Election
 * Safety, Leader Completeness and State Machine Safety throughout; reads are checked for linearizability
 * (a completed read's index covers everything committed anywhere when it was issued). At the end the
 * network heals, and the members must converge on a final command (retried, as a client would).
 */
function chaos(seed: number, options: CoreTuning, steps: number, membership = false): Net {
  const voters = ['a', 'b', 'c', 'd', 'e'];
  const all = membership ? [...voters, 'f', 'g'] : voters;
  const net = Network.create(voters, { seed, options });
  if (membership) for (const id of ['f', 'g']) net.add(id);
  const rng = new Prng(seed * 7919 + 13);
  const readFloor = new Map<string, number>();
  let n = 0;
  for (let step = 0; step < steps; step++) {
    const r = rng.next();
    try {
      if (r < 0.48) {
        net.tickAll(1);
      } else if (r < 0.66) {
        const l = net.leader();
        if (l) net.propose(l, `v${n++}`);
      } else if (r < 0.7) {
        net.isolate(rng.pick(all));
      } else if (r < 0.76) {
        net.heal();
      } else if (r < 0.79) {
        const shuffled = all.slice().sort(() => rng.next() - 0.5);
        const k = 1 + rng.int(all.length - 1);
        net.partition(shuffled.slice(0, k), shuffled.slice(k));
      } else if (r < 0.82) {
        net.restart(rng.pick(all));
      } else if (r < 0.85) {
        const id = rng.pick(all);
        const node = net.node(id);
        const first = net.core(id).log.snapshotIndex;
        if (node.appliedIndex > first)
          net.snapshot(id, rng.chance(0.5) ? undefined : Math.max(first, node.appliedIndex - 3));
      } else if (r < 0.88) {
        const id = rng.pick(all);
        readFloor.set(`${id}/${step + 1}`, Math.max(...all.map((x) => net.core(x).log.committed)));
        net.core(id).readIndex(step + 1);
        net.stabilize();
      } else if (membership && r < 0.93) {
        const l = net.leader();
        if (l) {
          const servers = net.status(l).configuration.servers;
          const id = rng.pick(all);
          const s = servers.find((x) => x.id === id);
          const nVoters = servers.filter((x) => x.suffrage === 'voter').length;
          if (!s) net.core(l).proposeConfigChange({ op: 'addNonvoter', id, address: id });
          else if (s.suffrage === 'nonvoter')
            net.core(l).proposeConfigChange({ op: rng.chance(0.6) ? 'promote' : 'remove', id });
          else if (nVoters > 3)
            net.core(l).proposeConfigChange({ op: rng.chance(0.5) ? 'demote' : 'remove', id });
          net.stabilize();
        }
      } else if (membership && r < 0.95) {
        const l = net.leader();
        if (l) {
          const vs = net.status(l).configuration.servers.filter((x) => x.suffrage === 'voter');
          net.core(l).transferLeadership(rng.pick(vs).id);
          net.stabilize();
        }
      } else {
        net.tickAll(1 + rng.int(3 * ET));
      }
    } catch (err) {
      if (!expectedRefusal(err)) throw err;
    }
  }
  for (const id of all) {
    for (const rs of net.node(id).readStates) {
      const floor = readFloor.get(`${id}/${rs.readCtx}`);
      if (floor !== undefined && rs.index > 0 && rs.index < floor) {
        throw new Error(`seed ${seed}: stale read on ${id}: index ${rs.index} < ${floor} committed at issue`);
      }
    }
  }
  net.heal();
  const members = () => net.status(net.leader()!).configuration.servers.map((s) => s.id);
  const done = () => settledMembers(net) && members().every((id) => net.node(id).fsm.includes('final'));
  for (let attempt = 0; !done(); attempt++) {
    if (attempt > 5) throw new Error(`seed ${seed}: the final command was never applied everywhere`);
    net.tickUntil(() => settledMembers(net), 60 * ET);
    try {
      net.propose(net.leader()!, 'final');
    } catch (err) {
      if (!expectedRefusal(err)) throw err;
    }
    for (let i = 0; i < 20 * ET && !done(); i++) net.tickAll(1);
  }
  const fsm = net.node(net.leader()!).fsm;
  for (const id of members()) {
    if (JSON.stringify(net.node(id).fsm) !== JSON.stringify(fsm))
      throw new Error(`seed ${seed}: ${id} diverged`);
  }
  return net;
}

test('§5.2/§5.4 under random partitions, crashes and compaction (paper options): one leader per term, leader completeness, state machine safety', (t) => {
  for (let seed = 1; seed <= 15; seed++) {
    const net = chaos(seed, PAPER, 300);
    t.true(net.leadersByTerm.size > 1, `seed ${seed}: several elections happened`);
  }
});

test('§5.2/§5.4 under random partitions, crashes and compaction (PreVote + CheckQuorum): same guarantees', (t) => {
  for (let seed = 1; seed <= 15; seed++) {
    const net = chaos(seed, DEFAULTS, 300);
    t.true(net.leadersByTerm.size > 1, `seed ${seed}: several elections happened`);
  }
});

test('§5/§6 random faults with membership changes, transfers and reads: safety, linearizable reads, convergence', (t) => {
  for (const options of [PAPER, DEFAULTS]) {
    for (let seed = 1; seed <= 15; seed++) {
      const net = chaos(seed, options, 500, true);
      t.true(net.leadersByTerm.size > 1, `seed ${seed}: several elections happened`);
    }
  }
});

// =================================================================================================
// §5.5 Follower and candidate crashes
// =================================================================================================

test('§5.5 a restarted server recovers term, vote and log from stable storage and re-applies committed entries', (t) => {
  const net = cluster3(DEFAULTS);
  for (let i = 0; i < 3; i++) net.propose('a', `v${i}`);
  net.tickAll(1);
  const before = net.status('b');
  const entries = net.entries('b');
  const b = net.restart('b');
  t.is(b.term, before.term);
  t.is(b.vote, before.vote);
  t.deepEqual(net.entries('b'), entries);
  t.is(b.role, 'follower');
  t.deepEqual(net.node('b').fsm, [], 'the FSM lives in memory');
  net.tickAll(1);
  t.deepEqual(net.node('b').fsm, ['v0', 'v1', 'v2'], 're-applied from the log');
  t.is(net.leader(), 'a');
});

// =================================================================================================
// §6 Cluster membership changes (thesis §4: one server at a time)
// =================================================================================================

/** Two voters a (leader), b, and d added as a non-voter and caught up. */
function withNonvoter(): Net {
  const net = Network.create(['a', 'b'], { options: DEFAULTS });
  net.elect('a');
  net.tickAll(1);
  net.add('d');
  net.core('a').proposeConfigChange({ op: 'addNonvoter', id: 'd', address: 'd:8300' });
  net.stabilize();
  net.tickAll(2);
  return net;
}

test('§6 a server added as non-voter receives the log', (t) => {
  const net = withNonvoter();
  t.deepEqual(net.logTerms('d'), net.logTerms('a'));
  const s = net.status('a').configuration.servers.find((x) => x.id === 'd');
  t.deepEqual(s, { id: 'd', address: 'd:8300', suffrage: 'nonvoter' });
  t.deepEqual(net.status('d').configuration, net.status('a').configuration, 'd learnt the configuration');
  t.is(net.core('d').lead, 'a');
});

test('§6 a non-voter does not count toward commitment', (t) => {
  const net = withNonvoter();
  net.isolate('b');
  const at = net.propose('a', 'x');
  t.is(net.core('d').log.term(at.index), at.term, 'd stores the entry');
  t.is(progressOf(net, 'a', 'd').match, at.index, 'and the leader knows it');
  t.true(net.core('a').log.committed < at.index, 'a and a non-voter are not a majority of {a, b}');
});

test('§6 a non-voter never campaigns', (t) => {
  const net = withNonvoter();
  const term = net.core('d').term;
  net.isolate('a');
  net.tick('d', 20 * ET);
  t.is(net.core('d').role, 'follower');
  t.is(net.core('d').term, term);
  t.false(net.sent.some((m) => m.from === 'd' && m.type === 'vote'));
  net.core('d').campaign();
  net.stabilize();
  t.is(net.core('d').role, 'follower', 'not even when asked to');
});

test('§6 a promoted server counts toward the majority', (t) => {
  const net = withNonvoter();
  net.core('a').proposeConfigChange({ op: 'promote', id: 'd' });
  net.stabilize();
  net.tickAll(1);
  t.is(net.status('a').configuration.servers.find((x) => x.id === 'd')?.suffrage, 'voter');
  net.isolate('b');
  const at = net.propose('a', 'x');
  t.is(net.core('a').log.committed, at.index, 'a and d are a majority of {a, b, d}');
});

test('§6 removing servers shrinks the majority', (t) => {
  const net = Network.create(['a', 'b', 'c', 'd', 'e'], { options: DEFAULTS });
  net.elect('a');
  net.tickAll(1);
  for (const id of ['e', 'd']) {
    net.core('a').proposeConfigChange({ op: 'remove', id });
    net.stabilize();
    net.tickAll(1);
  }
  t.deepEqual(
    net.status('a').configuration.servers.map((s) => s.id),
    ['a', 'b', 'c'],
  );
  for (const id of ['c', 'd', 'e']) net.isolate(id);
  const at = net.propose('a', 'x');
  t.is(net.core('a').log.committed, at.index, 'a and b are a majority of {a, b, c}');
});

test('§6 a leader that removes itself steps down once the change commits; the rest elect a leader', (t) => {
  const net = cluster3(DEFAULTS);
  const at = net.core('a').proposeConfigChange({ op: 'remove', id: 'a' });
  t.is(net.core('a').role, 'leader', 'still leading while the change is uncommitted');
  net.stabilize();
  t.is(net.core('a').role, 'follower');
  const mark = net.sent.length;
  t.true(net.core('b').log.term(at.index) === at.term && net.core('c').log.term(at.index) === at.term);
  net.tickUntil(() => net.leaders().length === 1 && net.leader() !== 'a', 10 * ET);
  const l = net.leader()!;
  t.true(l === 'b' || l === 'c');
  t.deepEqual(
    net.status(l).configuration.servers.map((s) => s.id),
    ['b', 'c'],
  );
  net.tickAll(5 * ET);
  t.false(
    net.sent.slice(mark).some((m) => m.from === 'a' && m.type === 'vote'),
    'a, no longer a voter, never campaigns',
  );
  t.is(net.core('a').role, 'follower');
  const x = net.propose(net.leader()!, 'x');
  t.is(net.core(net.leader()!).log.committed, x.index);
});

test('§6 only one membership change may be pending at a time', (t) => {
  const net = cluster3(DEFAULTS);
  net.add('d');
  net.add('e');
  const a = net.core('a');
  a.proposeConfigChange({ op: 'addNonvoter', id: 'd', address: 'd' });
  t.throws(() => a.proposeConfigChange({ op: 'addNonvoter', id: 'e', address: 'e' }), {
    instanceOf: ConfigChangeError,
  });
  net.stabilize();
  t.notThrows(
    () => a.proposeConfigChange({ op: 'addNonvoter', id: 'e', address: 'e' }),
    'once the first committed',
  );
});

test('§6 a new leader cannot change membership before it commits an entry of its term', (t) => {
  const net = cluster3(DEFAULTS);
  net.add('d');
  const b = net.core('b');
  const knownCommitted = b.log.lastIndex();
  t.is(b.log.committed, knownCommitted, 'precondition: b knows its whole log is committed');
  // Leadership moves to b, whose no-op then reaches nobody.
  net.dropIf((m) => m.type === 'append' && m.from === 'b');
  net.core('a').transferLeadership('b');
  net.stabilize();
  t.is(b.role, 'leader');
  t.is(
    b.log.committed,
    knownCommitted,
    'no configuration change is pending, but no entry of its term is committed',
  );
  t.throws(() => b.proposeConfigChange({ op: 'addNonvoter', id: 'd', address: 'd' }), {
    instanceOf: ConfigChangeError,
  });
  t.is(b.log.lastIndex(), knownCommitted + 1, 'only the no-op was appended');
  net.heal();
  net.tickAll(1);
  t.is(b.log.committed, b.log.lastIndex());
  t.notThrows(() => b.proposeConfigChange({ op: 'addNonvoter', id: 'd', address: 'd' }));
});

test('§6 removing or demoting the last voter is refused', (t) => {
  const net = Network.create(['a'], { options: DEFAULTS });
  net.elect('a');
  t.is(net.core('a').log.committed, 2, 'a single voter commits alone');
  t.throws(() => net.core('a').proposeConfigChange({ op: 'remove', id: 'a' }), {
    instanceOf: ConfigChangeError,
  });
  t.throws(() => net.core('a').proposeConfigChange({ op: 'demote', id: 'a' }), {
    instanceOf: ConfigChangeError,
  });
  t.is(net.core('a').log.lastIndex(), 2, 'nothing was appended');
});

test('§6 a configuration takes effect as soon as it is appended, before it commits', (t) => {
  const net = cluster3(DEFAULTS);
  net.add('d');
  const acks = net.hold((m) => m.type === 'appendResp' && m.to === 'a');
  const at = net.core('a').proposeConfigChange({ op: 'addNonvoter', id: 'd', address: 'd' });
  t.true(
    net.status('a').configuration.servers.some((s) => s.id === 'd'),
    'on the leader at once',
  );
  net.stabilize();
  t.true(net.core('a').log.committed < at.index);
  t.true(net.core('b').log.committed < at.index);
  t.true(
    net.status('b').configuration.servers.some((s) => s.id === 'd'),
    'on a follower once appended',
  );
  t.is(net.status('b').configurationIndex, at.index);
  acks.release();
  net.stabilize();
  t.is(net.core('a').log.committed, at.index);
});

test('§6 an uncommitted configuration entry that is overwritten is rolled back', (t) => {
  const ids = ['a', 'b', 'c', 'd', 'e'];
  const net = Network.create(ids, { options: PAPER });
  net.elect('a');
  net.tickAll(1);
  net.add('f');
  // a appends "add f"; it reaches b only, and nobody's acknowledgement reaches a.
  net.dropIf((m) => (m.type === 'append' && m.from === 'a' && m.to !== 'b') || m.type === 'appendResp');
  const at = net.core('a').proposeConfigChange({ op: 'addNonvoter', id: 'f', address: 'f' });
  net.stabilize();
  t.true(
    net.status('b').configuration.servers.some((s) => s.id === 'f'),
    'b uses the new configuration',
  );
  t.is(net.status('b').configurationIndex, at.index);
  // a crashes; c, d, e never saw the change; c wins term 3 and its no-op takes the same index.
  net.heal();
  net.crash('a');
  net.elect('c');
  net.tickAll(2);
  t.is(net.core('b').log.term(at.index), net.core('c').term, "b's configuration entry was overwritten");
  t.deepEqual(
    net.status('b').configuration.servers.map((s) => s.id),
    ids,
    'and b fell back to the previous configuration',
  );
  t.is(net.status('b').configurationIndex, 1);
});

test('§6 a leader that demotes itself steps down once the change commits and stays on as a non-voter', (t) => {
  const net = cluster3(DEFAULTS);
  net.core('a').proposeConfigChange({ op: 'demote', id: 'a' });
  net.stabilize();
  t.is(net.core('a').role, 'follower');
  t.is(net.status('a').configuration.servers.find((s) => s.id === 'a')?.suffrage, 'nonvoter');
  net.tickUntil(() => net.leaders().length === 1 && net.leader() !== 'a', 10 * ET);
  const x = net.propose(net.leader()!, 'x');
  net.tickAll(1);
  t.is(net.core('a').log.term(x.index), x.term, 'a still receives the log');
  t.deepEqual(net.node('a').fsm, ['x']);
});

test('§6 a new server cannot be a member before it has been added', (t) => {
  const net = cluster3(DEFAULTS);
  t.throws(() => net.core('a').proposeConfigChange({ op: 'promote', id: 'zz' }), {
    instanceOf: ConfigChangeError,
  });
  t.throws(() => net.core('a').proposeConfigChange({ op: 'addNonvoter', id: 'b', address: 'b' }), {
    instanceOf: ConfigChangeError,
  });
  t.throws(() => net.core('b').proposeConfigChange({ op: 'remove', id: 'c' }), {
    instanceOf: NotLeaderError,
  });
});

// =================================================================================================
// §7 Log compaction
// =================================================================================================

test('§7 after snapshotTaken the log is compacted up to the snapshot', (t) => {
  const net = cluster3(DEFAULTS);
  for (let i = 0; i < 5; i++) net.propose('a', `v${i}`);
  net.tickAll(1);
  const applied = net.node('a').appliedIndex;
  const meta = net.snapshot('a');
  t.is(meta.index, applied);
  t.is(meta.term, net.core('a').term);
  t.deepEqual(
    meta.config.servers.map((s) => s.id),
    ['a', 'b', 'c'],
  );
  const s = net.status('a');
  t.is(s.snapshotIndex, applied);
  t.is(net.core('a').log.firstIndex(), applied + 1);
  t.is(net.core('a').log.entryAt(applied), undefined);
  t.is(s.lastIndex, applied);
  t.deepEqual(s.configuration, meta.config, 'the configuration survives compaction');
  const x = net.propose('a', 'after');
  t.is(net.core('a').log.committed, x.index, 'replication goes on');
});

/** `c` misses the whole of a's term; a compacts past everything c has. Returns the snapshot. */
function laggingFollowerAndSnapshot(net: Net) {
  net.isolate('c');
  net.elect('a');
  for (let i = 0; i < 5; i++) net.propose('a', `v${i}`);
  net.tickAll(1);
  return net.snapshot('a');
}

test('§7 a follower behind the compacted log is sent the snapshot; it installs it and its log restarts after it', (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: DEFAULTS });
  const meta = laggingFollowerAndSnapshot(net);
  net.heal();
  net.tickAll(2);
  const snaps = net.sent.filter((m) => m.type === 'snapshot' && m.to === 'c');
  t.is(snaps.length, 1);
  t.deepEqual(
    net.node('c').installedSnapshots.map((s) => s.index),
    [meta.index],
    "c's Ready carried the snapshot",
  );
  t.is(net.status('c').snapshotIndex, meta.index);
  t.is(net.core('c').log.firstIndex(), meta.index + 1);
  t.is(net.status('c').commitIndex, meta.index);
  t.deepEqual(net.status('c').configuration, meta.config);
  t.deepEqual(net.node('c').fsm, ['v0', 'v1', 'v2', 'v3', 'v4']);
  t.is(net.node('c').durable.snapshot?.index, meta.index);
  const x = net.propose('a', 'after');
  net.tickAll(1);
  t.deepEqual(
    net.entries('c').map((e) => e.index),
    [x.index],
    'the log goes on right after the snapshot',
  );
  t.deepEqual(net.node('c').fsm, ['v0', 'v1', 'v2', 'v3', 'v4', 'after']);
  t.is(progressOf(net, 'a', 'c').state, 'replicate');
});

test('§7 a snapshot transfer that failed (reportSnapshot(id, false)) is retried', (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: DEFAULTS });
  const meta = laggingFollowerAndSnapshot(net);
  net.heal();
  let lost = 0;
  net.dropIf((m) => m.type === 'snapshot' && lost++ === 0);
  net.tickAll(1);
  t.is(net.sent.filter((m) => m.type === 'snapshot').length, 1);
  t.deepEqual(net.node('c').installedSnapshots, []);
  t.is(progressOf(net, 'a', 'c').state, 'probe', 'the leader gave up on that transfer');
  net.tickAll(2);
  t.is(net.sent.filter((m) => m.type === 'snapshot').length, 2, 'and sent it again');
  t.deepEqual(
    net.node('c').installedSnapshots.map((s) => s.index),
    [meta.index],
  );
  t.deepEqual(net.node('c').fsm, net.node('a').fsm);
});

test('§7 entries kept behind the snapshot (compactTo < index) still serve a slightly lagging follower', (t) => {
  const net = cluster3(DEFAULTS);
  net.crash('c');
  const behind = net.core('c').log.lastIndex();
  for (let i = 0; i < 4; i++) net.propose('a', `v${i}`);
  const meta = net.snapshot('a', behind);
  t.is(net.core('a').log.snapshotIndex, behind, 'entries after compactTo are kept');
  t.true(meta.index > behind);
  net.restart('c');
  net.tickAll(3);
  t.deepEqual(
    net.sent.filter((m) => m.type === 'snapshot'),
    [],
    'appends, not a snapshot',
  );
  t.is(net.core('c').log.lastIndex(), net.core('a').log.lastIndex());
  t.deepEqual(net.node('c').fsm, ['v0', 'v1', 'v2', 'v3']);
});

test('§7 a follower that already holds the entries a snapshot covers only advances its commit index', (t) => {
  const net = cluster3(DEFAULTS);
  for (let i = 0; i < 3; i++) net.propose('a', `v${i}`);
  const a = net.core('a');
  const meta = a.snapshotMetaAt(net.node('a').appliedIndex);
  const c = net.core('c');
  t.true(c.log.committed < meta.index, 'precondition: c does not know the last entry is committed');
  t.is(c.log.term(meta.index), meta.term);
  const lastBefore = c.log.lastIndex();
  c.stepMessage({ type: 'snapshot', from: 'a', to: 'c', term: a.term, snapshot: meta });
  const rd = c.ready();
  t.is(rd.snapshot, null, 'nothing to install');
  t.is(rd.hardState?.commit, meta.index);
  t.deepEqual(rd.committed.map((e: Entry) => e.index).at(-1), meta.index);
  const resp = rd.messages.filter(isAppendResp);
  t.is(resp.length, 1);
  t.false(resp[0].reject);
  t.is(resp[0].index, meta.index);
  c.advance(rd);
  t.is(c.log.snapshotIndex, 0, 'the log was not discarded');
  t.is(c.log.lastIndex(), lastBefore);
});

test('§7 a server restarts from its snapshot plus the log after it', (t) => {
  const net = Network.create(['a', 'b', 'c'], { options: DEFAULTS });
  const meta = laggingFollowerAndSnapshot(net);
  net.heal();
  net.tickAll(2);
  net.propose('a', 'after');
  net.tickAll(1);
  for (const id of ['a', 'c']) {
    const fsm = net.node(id).fsm.slice();
    const core = net.restart(id);
    t.is(core.log.snapshotIndex, meta.index, `${id}`);
    t.deepEqual(net.node(id).fsm, ['v0', 'v1', 'v2', 'v3', 'v4'], `${id}: restored from the snapshot`);
    net.tickUntil(() => settled(net), 10 * ET);
    net.tickAll(1);
    t.deepEqual(net.node(id).fsm, fsm, `${id}: then the log after it`);
  }
});
