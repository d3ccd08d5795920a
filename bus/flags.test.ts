import t from 'tap';
import { helpText, parseFlags, parseRoleOptions, UsageError, type FlagSpec } from './flags';

const specs: FlagSpec[] = [
  { name: 'port', kind: 'number', min: 1, max: 65535, help: 'port' },
  { name: 'lb', kind: 'string', choices: ['round-robin', 'least-connection'], help: 'lb' },
  { name: 'password', kind: 'string', secret: true, help: 'pw' },
  { name: 'verbose', kind: 'boolean', help: 'v' },
  { name: 'nats', kind: 'string', env: 'NATS_URL', help: 'nats' },
];

t.test('flags win over the environment; absent ones stay undefined', async (t) => {
  const parsed = parseFlags(['--port', '8080'], specs, 'SKIFF_X', { SKIFF_X_PORT: '9090', SKIFF_X_LB: 'least-connection', NATS_URL: 'nats://h:1' });
  t.equal(parsed.values.port, 8080);
  t.equal(parsed.sources.port, 'flag');
  t.equal(parsed.values.lb, 'least-connection');
  t.equal(parsed.sources.lb, 'env');
  t.equal(parsed.values.nats, 'nats://h:1');
  t.equal(parsed.values.password, undefined);
  t.equal(parseFlags([], specs, 'SKIFF_X', { SKIFF_X_VERBOSE: 'false' }).values.verbose, false);
});

t.test('bad input is a one-line UsageError naming the flag', async (t) => {
  const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
    [['--port', 'abc'], {}, /^--port must be a number/],
    [['--port', '0'], {}, /^--port must be at least 1/],
    [[], { SKIFF_X_PORT: '70000' }, /^SKIFF_X_PORT must be at most 65535/],
    [['--lb', 'random'], {}, /^--lb must be one of round-robin, least-connection/],
    [['--bogus'], {}, /^unknown option --bogus/],
    [['--port'], {}, /needs a value|argument missing/],
  ];
  for (const [argv, env, message] of cases) {
    try {
      parseFlags(argv, specs, 'SKIFF_X', env);
      t.fail(`${argv.join(' ')} should be refused`);
    } catch (error) {
      t.ok(error instanceof UsageError, 'a UsageError');
      t.match((error as Error).message, message);
      t.notMatch((error as Error).message, /\n/);
    }
  }
});

t.test('secret values never appear in errors', async (t) => {
  const secretNumber: FlagSpec[] = [{ name: 'token', kind: 'number', secret: true, help: 't' }];
  t.throws(() => parseFlags(['--token', 'hunter2'], secretNumber, 'X'), { message: /\(hidden\)/ });
  try {
    parseFlags(['--token', 'hunter2'], secretNumber, 'X');
  } catch (error) {
    t.notMatch((error as Error).message, /hunter2/);
  }
});

t.test('help lists every flag with its environment variable', async (t) => {
  const text = helpText('skiff x', specs, 'SKIFF_X');
  for (const spec of specs) t.match(text, `--${spec.name}`);
  t.match(text, '$NATS_URL');
  t.match(text, '$SKIFF_X_PORT');
});

t.test('parseRoleOptions: options, a usage error as exit 2, --help as exit 0', async (t) => {
  const specs = [{ name: 'port', kind: 'number' as const, help: 'a port' }];
  const written: string[] = [];
  const stderr = process.stderr.write;
  const stdout = process.stdout.write;
  const capture = (to: string) => ((chunk: string) => (written.push(`${to}:${chunk}`), true)) as unknown as typeof process.stdout.write;
  let results: unknown[];
  let other: unknown;
  process.stderr.write = capture('err');
  process.stdout.write = capture('out');
  try {
    results = [
      parseRoleOptions('skiff x', specs, 'SKIFF_X', () => ({ help: false, port: 1 })),
      parseRoleOptions('skiff x', specs, 'SKIFF_X', () => {
        throw new UsageError('--port must be a number');
      }),
      parseRoleOptions('skiff x', specs, 'SKIFF_X', () => ({ help: true })),
    ];
    try {
      parseRoleOptions('skiff x', specs, 'SKIFF_X', () => {
        throw new Error('not a usage error');
      });
    } catch (error) {
      other = error;
    }
  } finally {
    process.stderr.write = stderr;
    process.stdout.write = stdout;
  }
  t.same(results, [{ help: false, port: 1 }, 2, 0]);
  t.match(other, /not a usage error/, 'other errors pass through');
  t.equal(written[0], 'err:skiff x: --port must be a number\n', 'one line naming the command');
  t.match(written[1], /^out:usage: skiff x/, 'help text');
  t.equal(written.length, 2);
});
