import type { Command, Option } from 'commander';

/**
 * The manual page and the shell completion, written from the command table itself (commander's
 * commands, options and descriptions), so neither can drift from what `vtep` accepts.
 * `npm run build` writes dist/man/vtep.8 (package.json `man`: `npm install -g` installs it) and
 * dist/completion/vtep.bash; `vtep completion bash` prints the latter.
 */

interface Walked {
  path: string[];
  cmd: Command;
}

function walk(cmd: Command, path: string[] = []): Walked[] {
  const out: Walked[] = [{ path, cmd }];
  for (const sub of cmd.commands) if (!hidden(sub)) out.push(...walk(sub, [...path, sub.name()]));
  return out;
}

const hidden = (c: Command) => (c as unknown as { _hidden?: boolean })._hidden === true;
const visibleOptions = (c: Command) => c.options.filter((o: Option) => !o.hidden);

/** roff text: backslashes, a leading dot or quote, and hyphens that must stay hyphens. */
function roff(s: string): string {
  return s
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .replace(/^([.'])/gm, '\\&$1');
}

export interface ManPage {
  name: string;
  section: number;
  version: string;
  /** Extra sections after the commands: title → paragraphs. */
  sections: Record<string, string[]>;
}

export function manPage(program: Command, m: ManPage): string {
  const lines: string[] = [
    `.TH ${m.name.toUpperCase()} ${m.section} "" "${m.name} ${m.version}" "System Administration"`,
    '.SH NAME',
    `${m.name} \\- ${roff(program.description())}`,
    '.SH SYNOPSIS',
    `.B ${m.name}`,
    '.I command',
    '[\\fIoptions\\fR]',
    '.SH COMMANDS',
  ];
  for (const { path, cmd } of walk(program).slice(1)) {
    if (cmd.commands.length > 0 && cmd.options.length === 0) {
      lines.push(`.SS "${m.name} ${roff(path.join(' '))}"`, roff(cmd.description()));
      continue;
    }
    const args = cmd.registeredArguments
      .map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}]`))
      .join(' ');
    lines.push(
      `.SS "${m.name} ${roff(path.join(' '))}${args ? ` ${roff(args)}` : ''}"`,
      roff(cmd.description()),
    );
    for (const o of visibleOptions(cmd)) {
      lines.push('.TP', `.B ${roff(o.flags)}`);
      const extra: string[] = [];
      if (o.argChoices) extra.push(`one of: ${o.argChoices.join(', ')}`);
      if (o.defaultValue !== undefined) extra.push(`default: ${String(o.defaultValue)}`);
      lines.push(roff(`${o.description}${extra.length ? ` (${extra.join('; ')})` : ''}`));
    }
  }
  for (const [title, paras] of Object.entries(m.sections)) {
    lines.push(`.SH ${title.toUpperCase()}`);
    paras.forEach((p, i) => lines.push(...(i ? ['.PP'] : []), roff(p)));
  }
  return lines.join('\n') + '\n';
}

/**
 * Bash completion: each command path's words (its subcommands and options); the function walks
 * the words typed so far down the table and offers what the command reached takes.
 */
export function bashCompletion(program: Command, name: string): string {
  const fn = `_${name.replace(/\W/g, '_')}`;
  const table = walk(program).map(({ path, cmd }) => {
    const words = [
      ...cmd.commands.filter((c) => !hidden(c)).map((c) => c.name()),
      ...visibleOptions(cmd).map((o) => o.long ?? o.short ?? ''),
      '--help',
    ].filter(Boolean);
    return `  [${JSON.stringify([name, ...path].join(' '))}]=${JSON.stringify([...new Set(words)].join(' '))}`;
  });
  return [
    `# bash completion for ${name}, generated from its command table`,
    `declare -gA ${fn}_words=(`,
    ...table,
    ')',
    `${fn}() {`,
    `  local cur=\${COMP_WORDS[COMP_CWORD]} path=${name} w i next`,
    '  for ((i = 1; i < COMP_CWORD; i++)); do',
    '    w=${COMP_WORDS[i]}',
    '    [[ $w == -* ]] && continue',
    '    next="$path $w"',
    `    [[ -n \${${fn}_words[$next]+x} ]] && path=$next`,
    '  done',
    `  COMPREPLY=($(compgen -W "\${${fn}_words[$path]}" -- "$cur"))`,
    '}',
    `complete -F ${fn} ${name}`,
    '',
  ].join('\n');
}
