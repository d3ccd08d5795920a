// Aligned text tables with a header row, as `apps`, `stats` and `crashes` print them.

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function formatTable(header: readonly string[], rows: ReadonlyArray<readonly unknown[]>): string {
  const cells = [header.map(String), ...rows.map((row) => header.map((_, i) => cellText(row[i])))];
  const widths = header.map((_, column) => Math.max(...cells.map((row) => width(row[column]!))));
  return cells
    .map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell + ' '.repeat(widths[column]! - width(cell)))).join('  ').trimEnd())
    .join('\n');
}

/** "key: value" lines with the values aligned, for `skiff app`. */
export function formatFields(fields: ReadonlyArray<readonly [string, unknown]>): string {
  const keyWidth = Math.max(0, ...fields.map(([key]) => key.length + 1));
  return fields.map(([key, value]) => `${(key + ':').padEnd(keyWidth)}  ${cellText(value)}`.trimEnd()).join('\n');
}

function cellText(value: unknown): string {
  if (value === undefined || value === null || value === '') return '-';
  // A cell is one line: control characters from the server must not break the table apart.
  return String(value).replace(/[\u0000-\u001f\u007f]/g, ' ');
}

function width(text: string): number {
  return [...text].length;
}
