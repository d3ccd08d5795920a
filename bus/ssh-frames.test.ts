import t from 'tap';
import { decodeOutput, encodeOutput, EOF_TEXT, errorText, exitText, parseClientText, parseServerText, resizeText } from './ssh-frames';
import { SSH_MAX_CHUNK } from './platform';
import { validateSshControl, validateSshExit, validateSshReply, validateSshRequest } from './validate';

t.test('output frames carry the channel byte and round-trip', async (t) => {
  const [frame, ...rest] = encodeOutput(2, Buffer.from('oops\n'));
  t.same(rest, []);
  t.equal(frame![0], 2);
  const decoded = decodeOutput(frame!);
  t.equal(decoded?.channel, 2);
  t.equal(Buffer.from(decoded!.data).toString(), 'oops\n');
  t.same(encodeOutput(1, Buffer.alloc(0)), [], 'nothing to send, no frame');
});

t.test('large output is split into chunks of at most 64 KiB', async (t) => {
  const data = Buffer.alloc(SSH_MAX_CHUNK * 2 + 10, 7);
  const frames = encodeOutput(1, data);
  t.same(frames.map((f) => f.length - 1), [SSH_MAX_CHUNK, SSH_MAX_CHUNK, 10]);
  t.same(Buffer.concat(frames.map((f) => decodeOutput(f)!.data)), data, 'nothing lost or reordered');
});

t.test('unknown channels and empty frames are refused', async (t) => {
  t.equal(decodeOutput(Buffer.from([3, 65])), undefined);
  t.equal(decodeOutput(Buffer.from([0])), undefined);
  t.equal(decodeOutput(Buffer.alloc(0)), undefined);
});

t.test('client text frames', async (t) => {
  t.same(parseClientText(resizeText(120, 40)), { resize: [120, 40] });
  t.same(parseClientText(EOF_TEXT), { eof: true });
  t.match(parseClientText('{"resize":[0,40]}'), { invalid: /cols, rows/ });
  t.match(parseClientText('{"resize":[80]}'), { invalid: /cols, rows/ });
  t.match(parseClientText('not json hunter2'), { invalid: /JSON object/ });
  t.notMatch(JSON.stringify(parseClientText('not json hunter2')), /hunter2/, 'the input is never quoted');
  t.match(parseClientText('{"other":1}'), { invalid: /expected/ });
});

t.test('server text frames', async (t) => {
  t.same(parseServerText(exitText(3)), { exit: 3 });
  t.same(parseServerText(errorText('gone')), { error: 'gone' });
  t.same(parseServerText(exitText(129, 'the instance stopped')), { exit: 129, error: 'the instance stopped' });
  t.equal(parseServerText('{"exit":-1}'), undefined);
  t.equal(parseServerText('[]'), undefined);
});

t.test('ssh bus messages are validated', async (t) => {
  const session = '0b0c8f9e-1b2a-4c3d-9e8f-0123456789ab';
  const ok = validateSshRequest({ droplet: 'app1', instance: 'i1', session, command: 'ls', tty: true, cols: 100, rows: 30, extra: 1 });
  t.same(ok, { ok: true, value: { droplet: 'app1', instance: 'i1', session, command: 'ls', tty: true, cols: 100, rows: 30 } });
  t.same(validateSshRequest({ droplet: 'a', instance: 'i', session }), { ok: true, value: { droplet: 'a', instance: 'i', session, command: '', tty: false, cols: 80, rows: 24 } }, 'defaults');
  t.match(validateSshRequest({ droplet: 'a', instance: 'i', session: 'x.>' }), { ok: false, error: /session/ }, 'a session id cannot smuggle subject tokens');
  t.match(validateSshRequest({ droplet: 'a', instance: 'i', session, cols: 0 }), { ok: false, error: /cols/ });
  t.same(validateSshControl({ resize: [80, 24] }), { ok: true, value: { resize: [80, 24] } });
  t.same(validateSshControl({ kill: true }), { ok: true, value: { kill: true } });
  t.match(validateSshControl({ resize: [80, 24, 1] }), { ok: false });
  t.match(validateSshControl({}), { ok: false });
  t.same(validateSshExit({ exit_status: 3 }), { ok: true, value: { exit_status: 3 } });
  t.match(validateSshExit({ exit_status: 300 }), { ok: false });
  t.same(validateSshReply({ ok: true }), { ok: true, value: { ok: true } });
  t.same(validateSshReply({ error: 'busy', code: 'too_many_sessions' }), { ok: true, value: { error: 'busy', code: 'too_many_sessions' } });
  t.match(validateSshReply({ error: 'x', code: 'what' }), { ok: false });
});
