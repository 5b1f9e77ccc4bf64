/** Column alignment as Consul's CLI prints tables. */

function width(text: string): number {
  return [...text].length;
}

/**
 * Like ryanuber/columnize's SimpleFormat (used by `consul members`, `catalog nodes`, `raft list-peers`):
 * every column but a row's last is padded to the widest cell of that column, cells joined by two spaces;
 * cells are trimmed; no trailing newline.
 */
export function columnize(rows: string[][], glue = '  '): string {
  const cells = rows.map((row) => row.map((c) => c.trim()));
  const widths: number[] = [];
  for (const row of cells) {
    row.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, width(c));
    });
  }
  return cells
    .map((row) =>
      row.map((c, i) => (i === row.length - 1 ? c : c + ' '.repeat(widths[i] - width(c)) + glue)).join(''),
    )
    .join('\n');
}

/**
 * Like Go's text/tabwriter with minwidth 0 and the given padding (Consul uses 6 for `kv get -detailed`
 * and `catalog services -tags`). Each row's last cell is free text; the others are tab-terminated cells
 * padded to the widest cell of their column among the adjacent rows that also have that cell.
 * Every line ends with a newline.
 */
export function tabwrite(rows: string[][], padding = 6): string {
  const cellWidth = rows.map((row) => row.map(width));
  const padded = rows.map((row) => [...row]);
  const maxCols = Math.max(0, ...rows.map((r) => r.length - 1));
  for (let col = 0; col < maxCols; col++) {
    let start = 0;
    while (start < rows.length) {
      if (rows[start].length - 1 <= col) {
        start++;
        continue;
      }
      let end = start;
      let w = 0;
      while (end < rows.length && rows[end].length - 1 > col) {
        w = Math.max(w, cellWidth[end][col] + padding);
        end++;
      }
      for (let r = start; r < end; r++) padded[r][col] = rows[r][col] + ' '.repeat(w - cellWidth[r][col]);
      start = end;
    }
  }
  return padded.map((row) => `${row.join('')}\n`).join('');
}
