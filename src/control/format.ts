import type { FdbRow } from '../fdb/fdb.js';
import type { EngineStats } from '../vtep/engine.js';

/**
 * Text output for `vtep fdb show` and `vtep stats`, close to `bridge fdb show`
 * (`MAC dev DEV dst ADDR vni N self`) so that people and scripts used to it read it at once.
 */
export function formatFdb(rows: FdbRow[], tapOf: (vni: number) => string): string {
  return rows
    .map((r) => {
      const [addr, port] = splitKey(r.remote);
      const state = r.static ? 'permanent' : `age ${r.ageSeconds}s used ${r.usedSeconds}s`;
      return `${r.mac} dev ${tapOf(r.vni)} dst ${addr} port ${port} vni ${r.vni} self ${state}`;
    })
    .join('\n');
}

function splitKey(key: string): [string, string] {
  const i = key.lastIndexOf(':');
  return [key.slice(0, i).replace(/^\[|\]$/g, ''), key.slice(i + 1)];
}

export function formatStats(s: EngineStats & { underlay?: string; sourcePorts?: string }): string {
  const lines: string[] = [];
  if (s.underlay)
    lines.push(`underlay ${s.underlay}${s.sourcePorts ? ` source-ports ${s.sourcePorts}` : ''}`);
  for (const v of s.vnis) {
    lines.push(
      `vni ${v.vni} dev ${v.tap} remotes ${v.remotes.join(',') || '-'}${v.learnRemotes ? ' learn-remotes' : ''} fdb ${v.fdbEntries}`,
    );
    lines.push(`    RX: packets ${v.rx.packets} bytes ${v.rx.bytes}`);
    lines.push(`    TX: packets ${v.tx.packets} bytes ${v.tx.bytes}`);
  }
  const f = s.fdb;
  lines.push(
    `fdb: entries ${f.entries} learned ${f.learned} moved ${f.moved} aged ${f.aged} evicted ${f.evicted} cap-hit ${f.capHit} static-conflict ${f.staticConflict}`,
  );
  const drops = Object.entries(s.drops).filter(([, n]) => n > 0);
  lines.push(`drops: ${drops.length ? '' : 'none'}`);
  for (const [reason, n] of drops) lines.push(`    ${reason} ${n}`);
  return lines.join('\n');
}
