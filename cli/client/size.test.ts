import t from 'tap';
import { formatBytes, formatMemoryMb, parseMemoryMb } from './size';

t.test('parseMemoryMb accepts the Cloud Foundry forms', async (t) => {
  t.equal(parseMemoryMb('256M'), 256);
  t.equal(parseMemoryMb('256MB'), 256);
  t.equal(parseMemoryMb('256m'), 256);
  t.equal(parseMemoryMb('1G'), 1024);
  t.equal(parseMemoryMb('1.5G'), 1536);
  t.equal(parseMemoryMb('2gb'), 2048);
  t.equal(parseMemoryMb('128Mb'), 128);
  t.equal(parseMemoryMb(' 1 G '), 1024);
  t.equal(parseMemoryMb('512'), 512);
  t.equal(parseMemoryMb(128), 128);
});

t.test('parseMemoryMb rejects what is not a size, and sizes no instance may have', async (t) => {
  t.throws(() => parseMemoryMb('lots'), /memory must be a size like 256M or 1G \(units M, MB, G, GB; no unit: MB\), got "lots"/);
  t.throws(() => parseMemoryMb('256K'), /memory must be a size like/);
  t.throws(() => parseMemoryMb('256MiB'), /memory must be a size like/);
  t.throws(() => parseMemoryMb('1T'), /memory must be a size like/, 'T is not a Cloud Foundry unit for memory');
  t.throws(() => parseMemoryMb('-1G'), /memory must be a size like/);
  t.throws(() => parseMemoryMb(''), /memory must be a size like/);
  t.throws(() => parseMemoryMb('1.5M'), /whole number of megabytes/);
  t.throws(() => parseMemoryMb('0'), /memory must be from 16M to 64G, got "0"/);
  t.throws(() => parseMemoryMb('8'), /from 16M to 64G/);
  t.throws(() => parseMemoryMb('100G'), /memory must be from 16M to 64G, got "100G"/, 'in the units the user wrote, not the API\'s MB');
  t.equal(parseMemoryMb('16M'), 16);
  t.equal(parseMemoryMb('64G'), 65536);
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
