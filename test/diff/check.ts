// How the differential properties run: a bounded number of generated cases in `npm test`, as many
// as asked in `npm run fuzz:diff -- --runs N [--seed S]`, and every counterexample printed as an
// entry for test/diff/regressions.json, which each property replays before generating.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import type { Test } from 'tap';

/** Generated cases per property: VTEP_DIFF_RUNS, else the property's own default. */
export const runs = (fallback: number): number => Number(process.env.VTEP_DIFF_RUNS ?? fallback);
const SEED =
  process.env.VTEP_DIFF_SEED === undefined ? undefined : Number(process.env.VTEP_DIFF_SEED);

interface Regression {
  property: string;
  note: string;
  value: unknown;
}
const REGRESSIONS = JSON.parse(
  readFileSync(new URL('./regressions.json', import.meta.url), 'utf8'),
) as Regression[];

/** The recorded cases of `property`, each with the note that says what it showed. */
function regressions<T>(property: string): { note: string; value: T }[] {
  return REGRESSIONS.filter((r) => r.property === property).map((r) => ({
    note: r.note,
    value: r.value as T,
  }));
}

/**
 * Replay the recorded cases of `property` (one assertion each, named by its note), then check
 * `predicate` over generated values. `predicate` returns false or throws (saying what differed)
 * on a disagreement. Shrinking re-runs cases on the live topology, so it happens in fuzz:diff
 * only. Returns whether everything agreed.
 */
export async function checkDiff<T>(
  t: Test,
  property: string,
  arb: fc.Arbitrary<T>,
  predicate: (value: T) => Promise<boolean | void>,
  numRuns: number,
): Promise<boolean> {
  const once = (value: T) =>
    predicate(value).then(
      (v) => ({ agreed: v !== false, why: '' }),
      (err: unknown) => ({ agreed: false, why: String(err) }),
    );
  // A case that disagrees is sent once more: on a loaded 2-core machine the userspace switch can
  // miss a packet of a burst (its receive ring overflows), which is not a verdict. A disagreement
  // that repeats is one. Every predicate here may be repeated: the same frames again give the
  // same delivery and the same last-seen remotes.
  let retried = 0;
  const verdict = async (value: T) => {
    const v = await once(value);
    if (v.agreed) return v;
    retried++;
    t.comment(`${property}: sent again after: ${v.why.slice(0, 600) || 'a disagreement'}`);
    return once(value);
  };
  let ok = true;
  for (const r of regressions<T>(property)) {
    const { agreed, why } = await verdict(r.value);
    t.ok(agreed, `regression: ${r.note}`, why ? { diagnostic: true, why } : {});
    ok &&= agreed;
  }
  // The first disagreement is printed as soon as it is seen: shrinking re-runs cases on the
  // live topology and may be cut short by the time budget (fuzz:diff sets VTEP_DIFF_BUDGET_MS).
  let first = true;
  const reported = async (value: T) => {
    const { agreed, why } = await verdict(value);
    if (!agreed && first) {
      first = false;
      t.comment(
        `${property}: first disagreement, before shrinking: ${JSON.stringify(value)} ${why}`,
      );
    }
    if (why) throw new Error(why); // kept as errorInstance for the report below
    return agreed;
  };
  const budget = Number(process.env.VTEP_DIFF_BUDGET_MS ?? 0);
  const out = await fc.check<[T]>(fc.asyncProperty(arb, reported), {
    numRuns,
    seed: SEED,
    endOnFailure: process.env.VTEP_DIFF_RUNS === undefined,
    plugins: budget > 0 ? [fc.interruptAfterTimeLimit(budget) as fc.Plugin<[T]>] : [],
  });
  if (retried) t.comment(`${property}: ${retried} cases sent twice`);
  if (out.interrupted)
    t.comment(`${property}: stopped by the time budget after ${out.numRuns} cases`);
  if (!out.failed) return ok;
  const replay = JSON.stringify({ property, note: '…', value: out.counterexample?.[0] });
  t.fail(
    `${property}: disagreement after ${out.numRuns} cases (seed ${out.seed}, shrunk ` +
      `${out.numShrinks} times); add to test/diff/regressions.json to replay:\n${replay}\n` +
      String(out.errorInstance ?? ''),
  );
  return false;
}
