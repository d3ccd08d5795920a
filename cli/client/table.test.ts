import t from 'tap';
import { formatFields, formatTable } from './table';

t.test('columns line up under the header', async (t) => {
  const text = formatTable(['NAME', 'STATE', 'URLS'], [
    ['shop', 'STARTED', 'shop.localhost'],
    ['a-much-longer-name', 'STOPPED', ''],
  ]);
  t.equal(
    text,
    ['NAME                STATE    URLS', 'shop                STARTED  shop.localhost', 'a-much-longer-name  STOPPED  -'].join('\n'),
  );
});

t.test('a header alone is still a table; hostile cells stay on one line', async (t) => {
  t.equal(formatTable(['INDEX', 'STATE'], []), 'INDEX  STATE');
  t.equal(formatTable(['A', 'B'], [['x\ny', 1]]), 'A    B\nx y  1');
});

t.test('fields align their values', async (t) => {
  t.equal(formatFields([['name', 'shop'], ['instances', '1/2'], ['command', null]]), 'name:       shop\ninstances:  1/2\ncommand:    -');
});
