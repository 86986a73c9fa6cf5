import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Files that are not configurations: each refused by name, before it can hang or fill memory. */
export function hostileConfigs(dir: string): [name: string, path: string, reason: RegExp][] {
  const fifo = join(dir, 'fifo.yaml');
  spawnSync('mkfifo', [fifo]);
  const big = join(dir, 'big.yaml');
  writeFileSync(big, Buffer.alloc(100 << 20, 0x20)); // 100 MiB of spaces
  const laughs = join(dir, 'laughs.yaml');
  const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < 9; i++) {
    const prev = String.fromCharCode(96 + i);
    const name = String.fromCharCode(97 + i);
    levels.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`);
  }
  writeFileSync(laughs, levels.join('\n') + '\nvnis: [{vni: 1, remotes: *i}]\n');
  return [
    ['a FIFO', fifo, /is not a regular file \(a FIFO\)/],
    ['/dev/zero', '/dev/zero', /is not a regular file \(a character device\)/],
    ['100 MB', big, /is larger than 16 MiB \(104857600 bytes\)/],
    ['billion laughs', laughs, /expands YAML aliases too far \(at most 100\)/],
    ['a directory', dir, /is not a regular file \(a directory\)/],
  ];
}
