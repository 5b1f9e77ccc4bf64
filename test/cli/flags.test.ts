import test from 'ava';
import { type FlagDef, parseFlags, parseGoUint, UsageError, wantsHelp } from '../../src/cli/flags.ts';
import { columnize, tabwrite } from '../../src/cli/table.ts';

const defs: FlagDef[] = [
  { name: 'recurse', kind: 'bool', usage: '' },
  { name: 'separator', kind: 'string', usage: '' },
  { name: 'flags', kind: 'uint', usage: '' },
  {
    name: 'node-meta',
    kind: 'list',
    usage: '',
    validate: (v) => (v.includes('=') ? undefined : 'Missing ='),
  },
];

test('flags as -flag value, -flag=value and --flag; parsing stops at the first argument', (t) => {
  const p = parseFlags(defs, ['--recurse', '-separator', ':', '--flags=0x10', 'key', '-recurse=false']);
  t.true(p.bool('recurse'));
  t.is(p.string('separator'), ':');
  t.is(p.uint('flags'), 16n);
  t.deepEqual(p.args, ['key', '-recurse=false']);
  t.true(p.has('separator'));
  t.false(p.has('node-meta'));
});

test('booleans take =value only; "-" and "--" end the flags', (t) => {
  const p = parseFlags(defs, ['-recurse=false', '-', 'x']);
  t.false(p.bool('recurse'));
  t.true(p.has('recurse'));
  t.deepEqual(p.args, ['-', 'x']);
  t.deepEqual(parseFlags(defs, ['-recurse', 'true']).args, ['true']);
  t.deepEqual(parseFlags(defs, ['--', '-recurse']).args, ['-recurse']);
  t.deepEqual(parseFlags(defs, ['-node-meta', 'a=1', '-node-meta=b=2']).list('node-meta'), ['a=1', 'b=2']);
  t.is(parseFlags(defs, ['-separator=']).string('separator'), '');
});

test('flag errors read like Go flag errors', (t) => {
  const cases: Array<[string[], string]> = [
    [['-bogus'], 'flag provided but not defined: -bogus'],
    [['--bogus=1'], 'flag provided but not defined: -bogus'],
    [['-separator'], 'flag needs an argument: -separator'],
    [['-recurse=maybe'], 'invalid boolean value "maybe" for -recurse: parse error'],
    [['-flags=-1'], 'invalid value "-1" for flag -flags: parse error'],
    [
      ['-flags', '18446744073709551616'],
      'invalid value "18446744073709551616" for flag -flags: value out of range',
    ],
    [['-node-meta=x'], 'invalid value "x" for flag -node-meta: Missing ='],
    [['---x'], 'bad flag syntax: ---x'],
    [['-=x'], 'bad flag syntax: -=x'],
  ];
  for (const [argv, message] of cases)
    t.throws(() => parseFlags(defs, argv), { instanceOf: UsageError, message }, argv.join(' '));
});

test('parseGoUint follows strconv.ParseUint base 0', (t) => {
  t.is(parseGoUint('42'), 42n);
  t.is(parseGoUint('0x2A'), 42n);
  t.is(parseGoUint('052'), 42n);
  t.is(parseGoUint('0o52'), 42n);
  t.is(parseGoUint('0b101010'), 42n);
  t.is(parseGoUint('18446744073709551615'), 18446744073709551615n);
  t.is(parseGoUint('08'), 'parse error');
  t.is(parseGoUint(''), 'parse error');
});

test('-h, -help and --help ask for help anywhere before --', (t) => {
  t.true(wantsHelp(['-recurse', 'key', '-h']));
  t.true(wantsHelp(['--help']));
  t.true(wantsHelp(['-help']));
  t.false(wantsHelp(['--', '-h']));
  t.false(wantsHelp(['-hx']));
});

test('columnize pads every column but the last, two spaces apart', (t) => {
  t.is(
    columnize([
      ['Node', 'ID', 'Address'],
      ['a-long-name', 'x', '10.0.0.1'],
      ['b', 'yy', ''],
    ]),
    'Node         ID  Address\na-long-name  x   10.0.0.1\nb            yy  ',
  );
});

test('tabwrite pads tab-terminated cells by 6 within blocks of adjacent rows', (t) => {
  t.is(
    tabwrite([
      ['Key', 'v'],
      ['ModifyIndex', '3'],
    ]),
    'Key              v\nModifyIndex      3\n',
  );
  t.is(tabwrite([['ab', 'x'], ['free text'], ['a', 'y']]), 'ab      x\nfree text\na      y\n');
});
