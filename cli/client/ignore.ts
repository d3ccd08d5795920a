// Gitignore-style patterns for `.skiffignore` and `.cfignore`, matched against
// paths relative to the pushed directory ("/"-separated, no leading slash).
// Follows gitignore(5): comments, "!" negation, trailing "/" for directories
// only, a slash elsewhere anchoring the pattern to the root, "*", "?", "[...]",
// and "**" across directories. The last matching pattern wins; a file inside
// an ignored directory stays ignored (the walker never enters that directory).

interface Rule {
  regex: RegExp;
  negate: boolean;
  dirOnly: boolean;
}

export class IgnoreRules {
  private readonly rules: Rule[] = [];

  constructor(...sources: string[]) {
    for (const source of sources) this.add(source);
  }

  add(source: string): void {
    for (const line of source.split(/\r?\n/)) {
      const rule = compileLine(line);
      if (rule) this.rules.push(rule);
    }
  }

  ignores(relativePath: string, isDirectory: boolean): boolean {
    let ignored = false;
    for (const rule of this.rules) {
      if (rule.dirOnly && !isDirectory) continue;
      if (rule.negate === ignored && rule.regex.test(relativePath)) ignored = !rule.negate;
    }
    return ignored;
  }
}

function compileLine(raw: string): Rule | undefined {
  // Trailing spaces go unless escaped with a backslash.
  let line = raw.replace(/(?<!\\)\s+$/, '');
  if (line === '' || line.startsWith('#')) return undefined;
  let negate = false;
  if (line.startsWith('!')) {
    negate = true;
    line = line.slice(1);
  } else if (line.startsWith('\\!') || line.startsWith('\\#')) {
    line = line.slice(1);
  }
  let dirOnly = false;
  if (line.endsWith('/') && !line.endsWith('\\/')) {
    dirOnly = true;
    line = line.replace(/\/+$/, '');
  }
  if (line === '') return undefined;
  const anchored = line.includes('/');
  if (line.startsWith('/')) line = line.slice(1);
  const body = translate(line);
  const regex = new RegExp(anchored ? `^${body}$` : `^(?:.*/)?${body}$`);
  return { regex, negate, dirOnly };
}

function translate(pattern: string): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        const atSegmentStart = i === 0 || pattern[i - 1] === '/';
        const next = pattern[i + 2];
        if (atSegmentStart && next === '/') {
          out += '(?:.*/)?';
          i += 2;
          continue;
        }
        if (atSegmentStart && next === undefined) {
          out += '.*';
          i += 1;
          continue;
        }
        i += 1; // "a**b": as one star
      }
      out += '[^/]*';
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end === -1) {
        out += '\\[';
        continue;
      }
      let set = pattern.slice(i + 1, end);
      let negated = false;
      if (set.startsWith('!') || set.startsWith('^')) {
        negated = true;
        set = set.slice(1);
      }
      out += `(?!/)[${negated ? '^' : ''}${set.replace(/\\/g, '\\\\').replace(/\]/g, '\\]')}]`;
      i = end;
    } else if (c === '\\' && i + 1 < pattern.length) {
      out += escapeRegex(pattern[++i]!);
    } else {
      out += escapeRegex(c);
    }
  }
  return out;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
