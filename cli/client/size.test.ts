import t from 'tap';
import { formatBytes, formatMemoryMb, parseMemoryMb } from './size';

t.test('parseMemoryMb accepts the Cloud Foundry forms', async (t) => {
  t.equal(parseMemoryMb('256M'), 256);
  t.equal(parseMemoryMb('256MB'), 256);
  t.equal(parseMemoryMb('256m'), 256);
  t.equal(parseMemoryMb('1G'), 1024);
  t.equal(parseMemoryMb('1.5G'), 1536);
  t.equal(parseMemoryMb('2gb'), 2048);
  t.equal(parseMemoryMb('512'), 512);
  t.equal(parseMemoryMb(128), 128);
});

t.test('parseMemoryMb rejects what is not a size', async (t) => {
  t.throws(() => parseMemoryMb('lots'), /memory must be like 256M/);
  t.throws(() => parseMemoryMb('256K'), /memory must be like/);
  t.throws(() => parseMemoryMb('-1G'), /memory must be like/);
  t.throws(() => parseMemoryMb('0'), /at least 1/);
  t.throws(() => parseMemoryMb('1.5M'), /whole number/);
  t.throws(() => parseMemoryMb(''), /memory must be like/);
});

t.test('formatBytes and formatMemoryMb read like ls -h', async (t) => {
  t.equal(formatBytes(512), '512B');
  t.equal(formatBytes(1536), '1.5K');
  t.equal(formatBytes(40 * 1024 * 1024), '40.0M');
  t.equal(formatBytes(-1), '-');
  t.equal(formatMemoryMb(256), '256M');
  t.equal(formatMemoryMb(1024), '1G');
  t.equal(formatMemoryMb(1536), '1.5G');
  t.equal(formatMemoryMb(1100), '1100M');
});
