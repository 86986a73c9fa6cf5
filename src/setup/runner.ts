import { spawnSync } from 'node:child_process';

/**
 * How the setup module touches the system: it builds the same argv a person would type and
 * either prints it (dry run) or runs it. Nothing more clever. A failing command stops the
 * sequence with its stderr and status and says what was and was not applied.
 */

/** Which Debian package provides a tool, for the "not found" message. */
const PACKAGE_OF: Record<string, string> = {
  'ovs-vsctl': 'openvswitch-switch',
  'ovs-appctl': 'openvswitch-common',
  virsh: 'libvirt-clients',
  'virt-install': 'virtinst',
  ip: 'iproute2',
  bridge: 'iproute2',
  systemctl: 'systemd',
};

export class SetupError extends Error {
  override readonly name = 'SetupError';
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Shell-quote one word only where needed, so printed commands can be pasted. */
export function quote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export function render(argv: string[]): string {
  return argv.map(quote).join(' ');
}

export interface Runner {
  /** Run or print the commands in order; returns their stdout (empty in a dry run). */
  run(commands: string[][]): string[];
  readonly dryRun: boolean;
}

export function findCommand(cmd: string, path = process.env.PATH ?? ''): boolean {
  return (
    spawnSync('sh', ['-c', `command -v ${quote(cmd)}`], {
      env: { ...process.env, PATH: path },
      stdio: 'ignore',
    }).status === 0
  );
}

export function requireCommand(cmd: string, path?: string): void {
  if (!findCommand(cmd, path)) {
    const pkg = PACKAGE_OF[cmd];
    throw new SetupError(
      'ERR_MISSING_COMMAND',
      `${cmd} not found${pkg ? `: install the Debian package ${pkg} (apt-get install ${pkg})` : ''}`,
    );
  }
}

export function printer(out: (line: string) => void): Runner {
  return {
    dryRun: true,
    run(commands) {
      for (const c of commands) out(render(c));
      return commands.map(() => '');
    },
  };
}

export function executor(opts: { path?: string; timeoutMs?: number } = {}): Runner {
  return {
    dryRun: false,
    run(commands) {
      const outputs: string[] = [];
      for (const c of commands) requireCommand(c[0], opts.path);
      commands.forEach((c, i) => {
        const r = spawnSync(c[0], c.slice(1), {
          encoding: 'utf8',
          timeout: opts.timeoutMs ?? 30_000,
          env: opts.path ? { ...process.env, PATH: opts.path } : process.env,
        });
        if (r.status !== 0) {
          const done = commands.slice(0, i).map(render);
          const left = commands.slice(i + 1).map(render);
          throw new SetupError(
            'ERR_COMMAND_FAILED',
            `${render(c)} failed with status ${r.status ?? r.signal}: ${(r.stderr || r.error?.message || '').trim()}\n` +
              `applied before it: ${done.length ? done.join('; ') : 'nothing'}\n` +
              `not applied: ${left.length ? left.join('; ') : 'nothing else'}`,
            r.status ?? undefined,
          );
        }
        outputs.push(r.stdout);
      });
      return outputs;
    },
  };
}
