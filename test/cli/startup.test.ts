// What every `vtep` invocation loads before it parses its arguments: the command table and
// what the verbs need to check their flags, not the daemon (engine, threads, control planes,
// gRPC, the logger), which `vtep run` loads when it runs. A verb like `vtep fdb show` in an
// operator's loop then starts in a fraction of the time.
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import ts from 'typescript';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * The modules loaded by importing `entry` (a source file), following static imports only, as
 * the compiler emits them (type-only imports are gone): [source files, packages].
 */
function staticClosure(entry: string): [Set<string>, Set<string>] {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    const js = ts.transpileModule(readFileSync(file, 'utf8'), {
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2022,
        verbatimModuleSyntax: false,
      },
      fileName: file,
    }).outputText;
    for (const m of js.matchAll(/^\s*(?:import|export)\b[^'"()]*?['"]([^'"]+)['"]/gm)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else if (!spec.startsWith('node:')) packages.add(spec);
    }
  };
  visit(join(ROOT, entry));
  return [files, packages];
}

t.test('the CLI loads the daemon only for `vtep run`', async (t) => {
  const [files, packages] = staticClosure('src/cli/main.ts');
  const rel = [...files].map((f) => relative(ROOT, f));
  t.ok(rel.includes('src/cli/ctl.ts'), 'the walk follows the command table');
  t.ok(packages.has('commander'), 'and sees packages');
  t.same(
    rel.filter((f) => f.startsWith('src/daemon/') || f.startsWith('src/engine/')),
    [],
    'no daemon or engine module before the arguments are parsed',
  );
  for (const heavy of ['@grpc/grpc-js', '@grpc/proto-loader', 'pino', 'prom-client'])
    t.notOk(packages.has(heavy), `${heavy} is not loaded by every verb`);
  // The walk is not vacuous: from the daemon's entry it finds all of them.
  const [daemon, daemonPackages] = staticClosure('src/daemon/vtep.ts');
  t.ok(
    [...daemon].some((f) => f.includes('/src/engine/')),
    'the daemon has the engine',
  );
  for (const heavy of ['@grpc/grpc-js', 'prom-client'])
    t.ok(daemonPackages.has(heavy), `the daemon's closure has ${heavy}`);
});
