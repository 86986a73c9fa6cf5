// A private ovsdb-server holding Debian's hardware_vtep schema (package openvswitch-vtep), in a
// directory of the test's, reached over a unix socket; vtep-ctl against it.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../../src/lab/sh.js';

export const VTEP_SCHEMA = '/usr/share/openvswitch/vtep.ovsschema';

export class VtepDb {
  readonly sock: string;
  readonly file: string;

  constructor(
    readonly dir: string,
    readonly name = 'vtep',
  ) {
    this.sock = join(dir, `${name}.sock`);
    this.file = join(dir, `${name}.db`);
  }

  get target(): string {
    return `unix:${this.sock}`;
  }

  private run(cmd: string[], allowFail = false): string {
    const r = spawnSync(cmd[0], cmd.slice(1), {
      encoding: 'utf8',
      env: { ...process.env, OVS_RUNDIR: this.dir },
      timeout: 20_000,
    });
    if (r.status !== 0 && !allowFail)
      throw new Error(`${cmd.join(' ')}: exit ${r.status}: ${r.stderr}`);
    return r.stdout;
  }

  /** Create the database file (once) and start the server; `extra`: more remotes and options. */
  start(extra: string[] = []): this {
    if (!existsSync(this.file)) this.run(['ovsdb-tool', 'create', this.file, VTEP_SCHEMA]);
    this.run([
      'ovsdb-server',
      `--remote=punix:${this.sock}`,
      ...extra,
      `--pidfile=${join(this.dir, `${this.name}.pid`)}`,
      `--unixctl=${join(this.dir, `${this.name}.ctl`)}`,
      `--log-file=${join(this.dir, `${this.name}.log`)}`,
      '--detach',
      this.file,
    ]);
    return this;
  }

  /** Stop the server and wait until it is gone (its socket closed). */
  async stop(): Promise<void> {
    const pidFile = join(this.dir, `${this.name}.pid`);
    let pid = 0;
    try {
      pid = Number(readFileSync(pidFile, 'utf8').trim());
    } catch {
      return;
    }
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    for (let i = 0; i < 100; i++) {
      try {
        process.kill(pid, 0);
      } catch {
        return;
      }
      await sleep(50);
    }
    process.kill(pid, 'SIGKILL');
  }

  /** vtep-ctl against this database. */
  ctl(args: string[], allowFail = false): string {
    return this.run(['vtep-ctl', '--timeout=20', `--db=${this.target}`, ...args], allowFail);
  }

  /** `ovsdb-client dump`-like: the rows of a table as JSON objects (vtep-ctl --format=json list). */
  rows(table: string): Record<string, unknown>[] {
    const out = JSON.parse(this.ctl(['--format=json', 'list', table])) as {
      headings: string[];
      data: unknown[][];
    };
    return out.data.map((r) => Object.fromEntries(out.headings.map((h, i) => [h, r[i]])));
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
