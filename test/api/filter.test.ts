import test from 'ava';
import fc from 'fast-check';
import {
  applyFilter,
  compileFilter,
  type FieldSpec,
  FilterSyntaxError,
  MAX_EXPRESSION_LENGTH,
  MAX_NESTING,
} from '../../src/api/filter/index.ts';

// Rows shaped like Consul's responses (the filtering docs' examples).

const agentServices = [
  {
    ID: 'redis1',
    Service: 'redis',
    Tags: ['primary', 'production'],
    Meta: { env: 'production', foo: 'bar' },
    Port: 1234,
    Address: '',
    Weights: { Passing: 1, Warning: 1 },
    EnableTagOverride: false,
  },
  {
    ID: 'redis2',
    Service: 'redis',
    Tags: ['secondary', 'production'],
    Meta: { env: 'production', foo: 'bar' },
    Port: 1235,
    Address: '',
    Weights: { Passing: 1, Warning: 1 },
    EnableTagOverride: false,
  },
  {
    ID: 'redis3',
    Service: 'redis',
    Tags: ['primary', 'qa'],
    Meta: { env: 'qa' },
    Port: 1234,
    Address: '',
    Weights: { Passing: 1, Warning: 1 },
    EnableTagOverride: true,
  },
];

const catalogService = [
  {
    Node: 'node-1',
    Address: '198.18.0.1',
    TaggedAddresses: null,
    NodeMeta: { agent: 'true', arch: 'i386', os: 'darwin' },
    ServiceID: 'api-internal',
    ServiceName: 'api-internal',
    ServiceTags: ['tag'],
    ServiceMeta: { environment: 'qa', 'version.major': '2', 'some-key': 'x' },
    ServicePort: 9090,
  },
  {
    Node: 'node-2',
    Address: '198.18.0.2',
    TaggedAddresses: { lan: '10.0.0.2' },
    NodeMeta: { arch: 'arm', os: 'linux' },
    ServiceID: 'api-internal',
    ServiceName: 'api-internal',
    ServiceTags: ['test', 'tag'],
    ServiceMeta: { environment: 'production' },
    ServicePort: 9091,
  },
  {
    Node: 'node-4',
    Address: '198.18.0.4',
    TaggedAddresses: null,
    NodeMeta: { arch: 'i386', os: 'freebsd' },
    ServiceID: 'api-internal',
    ServiceName: 'api-internal',
    ServiceTags: [],
    ServiceMeta: {},
    ServicePort: 9090,
  },
];

const healthChecks = [
  { Node: 'node-1', CheckID: 'node-health', Name: 'Node level check', Status: 'critical', ServiceName: '' },
  {
    Node: 'node-1',
    CheckID: 'svc-web-health',
    Name: 'Service level check - web',
    Status: 'warning',
    ServiceName: 'web',
  },
];

const check = (status: string, name = 'c') => ({ CheckID: name, Status: status, ServiceTags: ['v1'] });
const healthService = [
  {
    Node: { Node: 'n1', Meta: { rack: 'a' } },
    Service: { ID: 'web-1', Service: 'web', Tags: ['v1'], Port: 8080, Meta: {} },
    Checks: [check('passing', 'serfHealth'), check('passing', 'svc')],
  },
  {
    Node: { Node: 'n2', Meta: { rack: 'b' } },
    Service: { ID: 'web-2', Service: 'web', Tags: ['v2'], Port: 8081, Meta: { canary: 'true' } },
    Checks: [check('passing', 'serfHealth'), check('critical', 'svc')],
  },
  {
    Node: { Node: 'n3', Meta: {} },
    Service: { ID: 'web-3', Service: 'web', Tags: [], Port: 8082, Meta: {} },
    Checks: [],
  },
];

const ids = (rows: { ID?: string; Node?: unknown; Service?: unknown }[], expr: string): string[] =>
  applyFilter(rows, expr).map((r) => {
    if (typeof r.ID === 'string') return r.ID;
    if (typeof r.Service === 'object' && r.Service !== null) return (r.Service as { ID: string }).ID;
    return String(r.Node);
  });

const syntaxError = (expr: string, fields?: FieldSpec): FilterSyntaxError => {
  try {
    compileFilter(expr, { fields });
  } catch (err) {
    if (err instanceof FilterSyntaxError) return err;
    throw err;
  }
  throw new Error(`expected ${JSON.stringify(expr)} to be rejected`);
};

// ---- Consul docs examples ----------------------------------------------------------------------

test('docs: agent services filtered by Meta.env == "qa"', (t) => {
  t.deepEqual(ids(agentServices, 'Meta.env == "qa"'), ['redis3']);
});

test('docs: catalog service filtered by NodeMeta.os == "linux"', (t) => {
  t.deepEqual(ids(catalogService, 'NodeMeta.os == "linux"'), ['node-2']);
});

test('docs: health node checks filtered by ServiceName != ""', (t) => {
  t.deepEqual(
    applyFilter(healthChecks, 'ServiceName != ""').map((c) => c.CheckID),
    ['svc-web-health'],
  );
});

test('docs: ServiceMeta.foo and ServiceMeta["foo"] select the same key', (t) => {
  for (const expr of ['ServiceMeta.environment == qa', 'ServiceMeta["environment"] == qa']) {
    t.deepEqual(ids(catalogService, expr), ['node-1'], expr);
  }
});

test('docs: precedence example: a and not b or c == (a and (not b)) or c', (t) => {
  const a = 'Service == redis';
  const b = 'primary in Tags';
  const c = 'Meta.env == qa';
  const flat = ids(agentServices, `${a} and not ${b} or ${c}`);
  const grouped = ids(agentServices, `( ${a} and (not ${b} )) or ${c}`);
  t.deepEqual(flat, grouped);
  t.deepEqual(flat, ['redis2', 'redis3']);
});

// ---- operators ---------------------------------------------------------------------------------

test('== and != on strings, quoted or bare', (t) => {
  t.deepEqual(ids(agentServices, 'ID == "redis2"'), ['redis2']);
  t.deepEqual(ids(agentServices, 'ID == redis2'), ['redis2']);
  t.deepEqual(ids(agentServices, 'ID == `redis2`'), ['redis2']);
  t.deepEqual(ids(agentServices, 'ID != redis2'), ['redis1', 'redis3']);
  t.deepEqual(ids(agentServices, 'Address == ""'), ['redis1', 'redis2', 'redis3']);
});

test('in / not in: array membership, substring, map key', (t) => {
  t.deepEqual(ids(agentServices, '"primary" in Tags'), ['redis1', 'redis3']);
  t.deepEqual(ids(agentServices, 'primary not in Tags'), ['redis2']);
  t.deepEqual(ids(agentServices, '"dis3" in ID'), ['redis3']);
  t.deepEqual(ids(agentServices, '"foo" in Meta'), ['redis1', 'redis2']);
  t.deepEqual(ids(agentServices, '"foo" not in Meta'), ['redis3']);
});

test('contains / not contains mirror in / not in', (t) => {
  t.deepEqual(ids(agentServices, 'Tags contains primary'), ['redis1', 'redis3']);
  t.deepEqual(ids(agentServices, 'Tags not contains "primary"'), ['redis2']);
  t.deepEqual(ids(agentServices, 'ID contains "1"'), ['redis1']);
  t.deepEqual(ids(agentServices, 'Meta contains env'), ['redis1', 'redis2', 'redis3']);
});

test('is empty / is not empty on strings, arrays, maps, nulls and missing fields', (t) => {
  t.deepEqual(ids(catalogService, 'ServiceTags is empty'), ['node-4']);
  t.deepEqual(ids(catalogService, 'ServiceTags is not empty'), ['node-1', 'node-2']);
  t.deepEqual(ids(catalogService, 'ServiceMeta is empty'), ['node-4']);
  t.deepEqual(ids(catalogService, 'TaggedAddresses is empty'), ['node-1', 'node-4']);
  t.deepEqual(ids(catalogService, 'TaggedAddresses is not empty'), ['node-2']);
  t.deepEqual(ids(catalogService, 'Nope is empty'), ['node-1', 'node-2', 'node-4']);
  t.deepEqual(ids(agentServices, 'Address is empty'), ['redis1', 'redis2', 'redis3']);
  t.deepEqual(ids(agentServices, 'Port is empty'), []);
});

test('matches / not matches use regular expressions', (t) => {
  t.deepEqual(ids(agentServices, 'ID matches "^redis[12]$"'), ['redis1', 'redis2']);
  t.deepEqual(ids(agentServices, 'ID not matches `[12]$`'), ['redis3']);
  t.deepEqual(ids(agentServices, 'Meta.env matches "(?i)^QA$"'), ['redis3']);
  t.deepEqual(ids(agentServices, 'Meta.env matches "(?P<e>prod)"'), ['redis1', 'redis2']);
  t.deepEqual(ids(agentServices, 'Tags matches "^sec"'), ['redis2']); // arrays: ANY element
  t.deepEqual(ids(agentServices, 'Port matches "12"'), []); // not a string: no match
  t.deepEqual(ids(agentServices, 'Port not matches "12"'), []);
});

test('invalid or RE2-incompatible regular expressions are syntax errors', (t) => {
  for (const re of ['(', '[a-', '(a)\\1', '(?=a)', '(?<!a)b', '(a+)+$', '(\\w*\\s?)*x', '(?U)a']) {
    const err = syntaxError(`ID matches ${JSON.stringify(re)}`);
    t.regex(err.message, /invalid regular expression/, re);
    t.is(err.position, 11, re);
  }
  t.notThrows(() => compileFilter('ID matches "(ab)+c*[)(]+"'));
  t.notThrows(() => compileFilter('ID matches "a\\\\-b"'));
});

// ---- logic ---------------------------------------------------------------------------------------

test('and binds tighter than or; not tighter than and', (t) => {
  // redis1: primary,production port 1234; redis2: secondary,production 1235; redis3: primary,qa 1234
  t.deepEqual(ids(agentServices, 'ID == redis1 or ID == redis2 and Port == 1234'), ['redis1']);
  t.deepEqual(ids(agentServices, '(ID == redis1 or ID == redis2) and Port == 1235'), ['redis2']);
  t.deepEqual(ids(agentServices, 'not ID == redis1 and Port == 1234'), ['redis3']);
  t.deepEqual(ids(agentServices, 'not (ID == redis1 and Port == 1234)'), ['redis2', 'redis3']);
  t.deepEqual(ids(agentServices, 'not not ID == redis1'), ['redis1']);
  t.deepEqual(ids(agentServices, 'qa in Tags or secondary in Tags or ID == nope'), ['redis2', 'redis3']);
  t.deepEqual(ids(agentServices, '((((ID == redis3))))'), ['redis3']);
});

test('whitespace is free around operators and parentheses', (t) => {
  t.deepEqual(ids(agentServices, '  (ID==redis1)or(ID ==\n\t"redis3")  '), ['redis1', 'redis3']);
  t.deepEqual(ids(agentServices, 'not(ID==redis1)'), ['redis2', 'redis3']);
});

// ---- selectors -----------------------------------------------------------------------------------

test('bracket selectors reach keys that are not identifiers', (t) => {
  t.deepEqual(ids(catalogService, 'ServiceMeta["version.major"] == 2'), ['node-1']);
  t.deepEqual(ids(catalogService, 'ServiceMeta["some-key"] is not empty'), ['node-1']);
  t.deepEqual(ids(catalogService, 'ServiceMeta[ `some-key` ] == x'), ['node-1']);
  t.deepEqual(ids(catalogService, 'TaggedAddresses["lan"] == "10.0.0.2"'), ['node-2']);
});

test('missing map keys: positive operators false, negative operators true', (t) => {
  t.deepEqual(ids(agentServices, 'Meta.foo == bar'), ['redis1', 'redis2']);
  t.deepEqual(ids(agentServices, 'Meta.foo != bar'), ['redis3']);
  t.deepEqual(ids(agentServices, 'Meta.foo is empty'), ['redis3']);
  t.deepEqual(ids(agentServices, 'x in Meta.foo'), []);
  t.deepEqual(ids(agentServices, 'x not in Meta.foo'), ['redis1', 'redis2', 'redis3']);
  t.deepEqual(ids(agentServices, 'Meta.foo matches "."'), ['redis1', 'redis2']);
  t.deepEqual(ids(agentServices, 'Meta.foo not matches "."'), ['redis3']);
  t.deepEqual(ids(catalogService, 'TaggedAddresses.lan != "10.0.0.2"'), ['node-1', 'node-4']);
});

test('prototype names are not fields', (t) => {
  t.deepEqual(ids(agentServices, 'Meta.constructor is not empty'), []);
  t.deepEqual(ids(agentServices, '"toString" in Meta'), []);
  t.deepEqual(ids(agentServices, 'Meta["__proto__"] is empty'), ['redis1', 'redis2', 'redis3']);
});

test('selecting through an array of objects is ANY, per element', (t) => {
  t.deepEqual(ids(healthService, 'Checks.Status == passing'), ['web-1', 'web-2']);
  // != applies per check: any check not passing (empty Checks matches nothing).
  t.deepEqual(ids(healthService, 'Checks.Status != passing'), ['web-2']);
  t.deepEqual(ids(healthService, 'not Checks.Status == critical'), ['web-1', 'web-3']);
  t.deepEqual(ids(healthService, 'Checks.Status is empty'), []);
  t.deepEqual(ids(healthService, 'Checks is empty'), ['web-3']);
  t.deepEqual(ids(healthService, 'v1 in Checks.ServiceTags'), ['web-1', 'web-2']);
  t.deepEqual(ids(healthService, 'Checks.CheckID == svc and Checks.Status == critical'), ['web-2']);
  t.deepEqual(ids(healthService, 'Service.Tags == v2'), ['web-2']);
  t.deepEqual(ids(healthService, 'Service.Meta.canary == true and Node.Meta.rack == b'), ['web-2']);
  t.deepEqual(ids(healthService, 'Node.Meta.rack is empty'), ['web-3']);
});

test('selecting into a scalar matches nothing', (t) => {
  t.deepEqual(ids(agentServices, 'ID.x == y'), []);
  t.deepEqual(ids(agentServices, 'ID.x != y'), []);
});

test('numeric path segments select object keys', (t) => {
  t.true(compileFilter('Map.0 == a').matches({ Map: { '0': 'a' } }));
});

// ---- values and coercion ----------------------------------------------------------------------

test('numbers coerce to numeric fields, quoted or not', (t) => {
  t.deepEqual(ids(agentServices, 'Port == 1234'), ['redis1', 'redis3']);
  t.deepEqual(ids(agentServices, 'Port == "1235"'), ['redis2']);
  t.deepEqual(ids(agentServices, 'Port == "0x4d3"'), ['redis2']); // Go ParseInt base 0
  t.deepEqual(ids(agentServices, 'Port != 1234'), ['redis2']);
  t.deepEqual(ids(agentServices, 'Weights.Passing == 1.0'), ['redis1', 'redis2', 'redis3']);
  t.true(compileFilter('Value == -2.5').matches({ Value: -2.5 }));
  t.true(compileFilter('1234 in Ports').matches({ Ports: [80, 1234] }));
  t.true(compileFilter('"1234" in Mixed').matches({ Mixed: [true, 'x', 1234] }));
});

test('booleans coerce with Go ParseBool', (t) => {
  t.deepEqual(ids(agentServices, 'EnableTagOverride == true'), ['redis3']);
  t.deepEqual(ids(agentServices, 'EnableTagOverride == false'), ['redis1', 'redis2']);
  t.deepEqual(ids(agentServices, 'EnableTagOverride == "T"'), ['redis3']);
  t.deepEqual(ids(agentServices, 'EnableTagOverride != 0'), ['redis3']);
});

test('numbers compare as text against string fields', (t) => {
  t.deepEqual(ids(catalogService, 'NodeMeta.agent == true'), ['node-1']);
  t.true(compileFilter('Meta.v == 2').matches({ Meta: { v: '2' } }));
  t.false(compileFilter('Meta.v == 2').matches({ Meta: { v: '2.0' } }));
});

test('a literal that does not convert to the field type matches nothing', (t) => {
  t.deepEqual(ids(agentServices, 'Port == web'), []);
  t.deepEqual(ids(agentServices, 'Port != web'), []);
  t.deepEqual(ids(agentServices, 'not Port == web'), ['redis1', 'redis2', 'redis3']);
  t.deepEqual(ids(agentServices, 'EnableTagOverride == yes'), []);
  t.deepEqual(ids(agentServices, 'x in Port'), []);
  t.deepEqual(ids(agentServices, 'x not in Port'), []);
});

test('string escapes: Go escapes in double quotes, none in backticks', (t) => {
  t.true(compileFilter('V == "a\\"b\\\\c\\n\\t\\x41\\u00e9\\101"').matches({ V: 'a"b\\c\n\tAéA' }));
  t.true(compileFilter('V == `a\\nb`').matches({ V: 'a\\nb' }));
  t.true(
    compileFilter('V == "spaces and (parens) and \\"and\\""').matches({ V: 'spaces and (parens) and "and"' }),
  );
  t.true(compileFilter('V == "ünïcödé ✓"').matches({ V: 'ünïcödé ✓' }));
});

test('a dotted bare value is taken as its text', (t) => {
  t.true(compileFilter('Version == v1.2').matches({ Version: 'v1.2' }));
  t.true(compileFilter('a.b in Tags').matches({ Tags: ['a.b'] }));
  t.true(compileFilter('x/y == k8s/app').matches({ 'x/y': 'k8s/app' }));
});

// ---- syntax errors -------------------------------------------------------------------------------

test('error messages name the problem and the column', (t) => {
  const err = syntaxError('Meta.env == and and x == y');
  t.is(err.name, 'FilterSyntaxError');
  t.is(err.message, 'filter: unexpected "and" at column 13; expected a value');
  t.is(err.position, 12);
  t.is(
    syntaxError('ID == a and').message,
    'filter: unexpected end of input at column 12; expected a selector or a value',
  );
  t.is(syntaxError('and ID == a').position, 0);
  t.is(syntaxError('ID == a or or ID == b').position, 11);
});

test('malformed expressions are FilterSyntaxError', (t) => {
  const cases: [string, RegExp][] = [
    ['', /empty expression/],
    ['   ', /empty expression/],
    ['(ID == a', /unbalanced "\("/],
    ['ID == a)', /unexpected "\)"/],
    ['ID == a b', /unexpected "b"/],
    ['ID == "abc', /unterminated string/],
    ['ID == `abc', /unterminated string/],
    ['ID == "a\nb"', /newline in string/],
    ['ID == "\\q"', /invalid escape/],
    ['ID = a', /expected "=="/],
    ['ID ! a', /expected "!="/],
    ['ID ~ a', /unexpected character "~"/],
    ['ID', /expected an operator/],
    ['ID is', /expected "empty"/],
    ['ID is not', /expected "empty"/],
    ['ID is full', /expected "empty"/],
    ['ID not', /expected an operator/],
    ['"a" == ID', /expected "in" or "not in"/],
    ['"a" in "b"', /expected a selector/],
    ['ID == 08', /invalid number/],
    ['ID == 1abc', /invalid number/],
    ['Meta[env] == x', /expected a quoted map key/],
    ['Meta["env" == x', /expected "\]"/],
    ['Meta. == x', /expected a field name/],
    ['_ID == x', /unexpected character "_"/],
    ['not', /unexpected end of input/],
    ['()', /unexpected "\)"/],
    ['ID == a and ()', /unexpected "\)"/],
    ['in in Tags', /expected a selector or a value/],
  ];
  for (const [expr, re] of cases) t.regex(syntaxError(expr).message, re, JSON.stringify(expr));
});

test('limits: length and nesting', (t) => {
  const long = `ID == "${'x'.repeat(MAX_EXPRESSION_LENGTH)}"`;
  t.regex(syntaxError(long).message, /longer than 4096/);
  t.notThrows(() => compileFilter(`${'('.repeat(MAX_NESTING)}ID == a${')'.repeat(MAX_NESTING)}`));
  const deep = `${'('.repeat(MAX_NESTING + 1)}ID == a${')'.repeat(MAX_NESTING + 1)}`;
  t.regex(syntaxError(deep).message, /nested more than 64/);
  t.regex(syntaxError(`${'not '.repeat(MAX_NESTING + 1)}ID == a`).message, /nested more than 64/);
  // Long flat chains are fine: they do not nest.
  const chain = Array.from({ length: 300 }, (_, i) => `ID == a${i}`).join(' or ');
  t.true(compileFilter(chain).matches({ ID: 'a299' }));
});

// ---- field specs -------------------------------------------------------------------------------

const healthSpec: FieldSpec = {
  Node: { object: { Node: 'string', Meta: { map: 'string' } } },
  Service: {
    object: {
      ID: 'string',
      Service: 'string',
      Tags: { array: 'string' },
      Port: 'int',
      Weight: 'uint',
      Ratio: 'float',
      EnableTagOverride: 'bool',
      Meta: { map: 'string' },
      Ports: { array: 'int' },
    },
  },
  Checks: { array: { object: { Status: 'string', CheckID: 'string', ServiceTags: { array: 'string' } } } },
};

test('a spec accepts known selectors and still evaluates', (t) => {
  const f = compileFilter(
    'Checks.Status != passing and Service.Port == "8081" and v2 in Service.Tags and Node.Meta["rack"] == b',
    { fields: healthSpec },
  );
  t.deepEqual(
    healthService.filter((r) => f.matches(r)).map((r) => r.Service.ID),
    ['web-2'],
  );
  t.notThrows(() =>
    compileFilter('Service.Meta.anything is empty and Checks is not empty', { fields: healthSpec }),
  );
  t.notThrows(() =>
    compileFilter('Service.EnableTagOverride == t and 80 in Service.Ports', { fields: healthSpec }),
  );
});

test('a spec rejects unknown selectors, naming them', (t) => {
  const err = syntaxError('Service.ID == a and Service.Nope == b', healthSpec);
  t.is(err.message, 'filter: unknown selector "Service.Nope" at column 21');
  t.is(err.position, 20);
  t.regex(syntaxError('Checks.Nope == x', healthSpec).message, /unknown selector "Checks.Nope"/);
  t.regex(syntaxError('service.ID == x', healthSpec).message, /unknown selector/); // case-sensitive
  t.regex(syntaxError('Service.ID.x == y', healthSpec).message, /"Service.ID" has no field "x"/);
  t.regex(syntaxError('Service.Meta.a.b == y', healthSpec).message, /has no field "b"/);
  t.regex(syntaxError('constructor is empty', healthSpec).message, /unknown selector/);
});

test('a spec rejects operators the field type does not support', (t) => {
  t.regex(syntaxError('Service.Port contains 1', healthSpec).message, /"in\/contains" is not supported/);
  t.regex(syntaxError('Service.Port is empty', healthSpec).message, /"is empty" is not supported/);
  t.regex(syntaxError('Service.Tags == a', healthSpec).message, /"==" is not supported/);
  t.regex(syntaxError('Service.Meta matches a', healthSpec).message, /"matches" is not supported/);
  t.regex(syntaxError('Service is empty', healthSpec).message, /not supported for selector "Service"/);
  t.regex(syntaxError('x in Checks', healthSpec).message, /not supported/);
});

test('a spec rejects values that do not convert to the field type', (t) => {
  const err = syntaxError('Service.Port == web', healthSpec);
  t.is(err.message, 'filter: value "web" is not a valid int for selector "Service.Port" at column 17');
  t.regex(syntaxError('Service.Port == 1.5', healthSpec).message, /not a valid int/);
  t.regex(syntaxError('Service.Weight == -1', healthSpec).message, /not a valid uint/);
  t.regex(syntaxError('Service.Ratio == x', healthSpec).message, /not a valid float/);
  t.regex(syntaxError('Service.EnableTagOverride == yes', healthSpec).message, /not a valid bool/);
  t.regex(syntaxError('x in Service.Ports', healthSpec).message, /not a valid int/);
  t.notThrows(() =>
    compileFilter('Service.Ratio == 1.5 and Service.Weight == "0x10"', { fields: healthSpec }),
  );
});

// ---- API -----------------------------------------------------------------------------------------

test('applyFilter: undefined or empty keeps every row', (t) => {
  t.is(applyFilter(agentServices, undefined), agentServices);
  t.is(applyFilter(agentServices, ''), agentServices);
  t.throws(() => applyFilter(agentServices, 'ID =='), { instanceOf: FilterSyntaxError });
});

test('compiled filters keep their source and never throw on odd rows', (t) => {
  const f = compileFilter('Service.Tags contains a and Meta.x != y');
  t.is(f.source, 'Service.Tags contains a and Meta.x != y');
  for (const row of [null, undefined, 0, 'str', [], [[]], { Service: 'x' }, { Service: { Tags: null } }]) {
    t.notThrows(() => f.matches(row));
  }
});

// ---- fuzzing -------------------------------------------------------------------------------------

const compilesOrSyntaxError = (expr: string): boolean => {
  try {
    compileFilter(expr);
    compileFilter(expr, { fields: healthSpec });
    return true;
  } catch (err) {
    return err instanceof FilterSyntaxError && err.position >= 0 && err.position <= expr.length;
  }
};

const valid = [
  'Checks.Status != passing and Service.Port == "8081"',
  'not (v2 in Service.Tags or Service.Meta["a-b"] is not empty)',
  'Service.ID matches "^web-[0-9]+$" and Node.Meta.rack not contains `x`',
  '"a" not in Service.Tags or Service.EnableTagOverride == true',
];
const alphabet = [...'()[]."`\\=!<>-_ \t\n0123456789abcnotiseymprd'];

test('fuzz: random strings compile or throw FilterSyntaxError, quickly', (t) => {
  const started = performance.now();
  fc.assert(fc.property(fc.string({ maxLength: 200 }), compilesOrSyntaxError), { numRuns: 2000 });
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom(...alphabet, ' and ', ' or ', ' not ', ' is empty', ' in ', '=='), {
        maxLength: 80,
      }),
      (parts) => compilesOrSyntaxError(parts.join('')),
    ),
    { numRuns: 2000 },
  );
  t.true(performance.now() - started < 10_000);
});

test('fuzz: mutations of valid expressions compile or throw FilterSyntaxError', (t) => {
  const mutation = fc.record({
    base: fc.constantFrom(...valid),
    at: fc.nat(),
    cut: fc.nat({ max: 8 }),
    insert: fc.string({ maxLength: 6 }),
  });
  fc.assert(
    fc.property(mutation, ({ base, at, cut, insert }) => {
      const i = at % (base.length + 1);
      const expr = base.slice(0, i) + insert + base.slice(i + cut);
      if (!compilesOrSyntaxError(expr)) return false;
      try {
        const f = compileFilter(expr);
        for (const row of healthService) f.matches(row);
      } catch (err) {
        if (!(err instanceof FilterSyntaxError)) return false;
      }
      return true;
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

test('fuzz: pathological inputs stay fast', (t) => {
  const inputs = [
    '('.repeat(4000),
    'not '.repeat(1000),
    '"'.repeat(4096),
    `ID == "${'\\'.repeat(4000)}`,
    'a.'.repeat(2000),
    'a == b and '.repeat(372),
    `ID matches "${'(a*)'.repeat(500)}"`,
  ];
  for (const expr of inputs) {
    const started = performance.now();
    t.true(compilesOrSyntaxError(expr));
    t.true(performance.now() - started < 200, expr.slice(0, 20));
  }
  // A regex that is accepted runs in linear time on a long value.
  const f = compileFilter('V matches "^(ab|cd)*e$"');
  const started = performance.now();
  t.false(f.matches({ V: `${'ab'.repeat(20_000)}x` }));
  t.true(performance.now() - started < 200);
});
