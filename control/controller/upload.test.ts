import t from 'tap';
import { gzipSync } from 'node:zlib';
import { packageFormat } from './upload';

t.test('packages are recognised by their first bytes', async (t) => {
  t.equal(packageFormat(Buffer.from('PK\x03\x04rest', 'latin1')), 'zip');
  t.equal(packageFormat(Buffer.from('PK\x05\x06', 'latin1')), 'zip', 'an empty zip');
  t.equal(packageFormat(gzipSync(Buffer.from('tar bytes'))), 'tar.gz');
  t.equal(packageFormat(Buffer.from('hello world')), undefined);
  t.equal(packageFormat(Buffer.from('PK')), undefined);
  t.equal(packageFormat(Buffer.alloc(0)), undefined);
});
