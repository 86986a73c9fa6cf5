#!/usr/bin/env node
// Prints one closing line, "N passed, N failed, N skipped", counted over every assertion of every
// test file tap recorded in .tap/test-results, so that CI logs end with a line any reader (and
// any log scraper) understands. Exits non-zero if anything failed.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Parser } from 'tap-parser';

const root = process.argv[2] ?? '.tap/test-results';
const counts = { passed: 0, failed: 0, skipped: 0, todo: 0 };
const failedNames = [];

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.tap') ? [p] : [];
  });
}

/**
 * Count leaf assertions. A subtest's own "ok" line counts only when it says something its
 * children cannot: a skip (`plan(0, reason)`), or a failure with no failing child (a thrown
 * error, a plan mismatch). Returns a function telling how many leaves failed under `parser`.
 */
function watch(parser, file) {
  const children = new Map();
  let failed = 0;
  parser.on('child', (child) => children.set(child.name, watch(child, file)));
  parser.on('assert', (a) => {
    const childFailures = children.get(a.name);
    if (childFailures !== undefined) {
      children.delete(a.name);
      if (a.skip) counts.skipped++;
      else if (!a.ok && childFailures() === 0) fail(a);
      else failed += childFailures();
      return;
    }
    if (a.skip) counts.skipped++;
    else if (a.todo) counts.todo++;
    else if (a.ok) counts.passed++;
    else fail(a);
  });
  function fail(a) {
    failed++;
    counts.failed++;
    failedNames.push(`${file}: ${a.fullname || a.name}`);
  }
  return () => failed;
}

// tap keeps the results of test files that have since been deleted or renamed; count only the
// files that still exist (`.tap/test-results/test/x.test.ts.tap` is the result of `test/x.test.ts`)
const live = (p) => existsSync(p.slice(root.length + 1).replace(/\.tap$/, ''));
for (const file of files(root).filter(live)) {
  const parser = new Parser({ bail: false });
  watch(parser, file);
  parser.end(readFileSync(file, 'utf8'));
}
for (const name of failedNames.slice(0, 20)) console.log(`failed: ${name}`);
console.log(`${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
process.exit(counts.failed > 0 ? 1 : 0);
