// Hostile inputs to selection (issue 17): setup scripts that would take hours to evaluate, patterns
// that would not compile. Each case ends quickly, in one error line or a warning.
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/model/errors.js';
import { type ScriptHost, LIMITS, evaluateSetup, normalise, trimPattern } from '../../src/select/release/shell.js';
import { compileWildcard, matchingPrefixes, matchingSuffixes, wildcardMatches } from '../../src/select/pattern.js';

/** An in-memory tree of scripts (image paths). */
function memoryHost(files: Record<string, string>): ScriptHost {
  return {
    read: (p) => files[normalise(p)] ?? null,
    kind: (p) => (files[normalise(p)] !== undefined ? 'file' : null),
    resolve: (p) => normalise(p),
  };
}

/** Milliseconds `f` takes. */
function timed<T>(f: () => T): [T, number] {
  const t0 = performance.now();
  const r = f();
  return [r, performance.now() - t0];
}

describe('case 11: setup scripts are evaluated in bounded time', () => {
  it('${V%*a*a*a*a*a*a*a*a*a*a*b} on a 60-character value ends at once, as in bash', () => {
    const host = memoryHost({
      '/cvmfs/r/setup.sh': ['V=' + 'a'.repeat(60), 'X=${V%*a*a*a*a*a*a*a*a*a*a*b}', 'Y=${V##*a*a*a*a*a*a*a*a*a*a*b}', 'Z=${V%%a*a}', 'W=${V#a?a}'].join('\n'),
    });
    const [r, ms] = timed(() => evaluateSetup('/cvmfs/r/setup.sh', host));
    expect(ms).toBeLessThan(2000);
    expect(r.env.get('X')).toBe('a'.repeat(60)); // nothing ends in b: nothing removed (bash agrees)
    expect(r.env.get('Y')).toBe('a'.repeat(60));
    expect(r.env.get('Z')).toBe('');
    expect(r.env.get('W')).toBe('a'.repeat(57));
  });

  it('24 scripts each sourcing the next twice: evaluated once per environment, in well under a second', () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 24; i++) files[`/cvmfs/r/s${i}.sh`] = i < 23 ? `. /cvmfs/r/s${i + 1}.sh\n. /cvmfs/r/s${i + 1}.sh\nA${i}=x\n` : 'LAST=1\n';
    const [r, ms] = timed(() => evaluateSetup('/cvmfs/r/s0.sh', memoryHost(files)));
    expect(ms).toBeLessThan(2000);
    expect(r.env.get('LAST')).toBe('1');
    expect(r.env.get('A0')).toBe('x');
  });
});
