// Long synchronous work that pauses now and then: written as a generator that yields at safe
// points, it runs to the end at once for a synchronous caller, and for an asynchronous one lets
// the event loop turn at every pause (the selection walk of a large tree runs for seconds, and
// the SquashFS writer's reads and compression results are delivered by the event loop).

/**
 * A computation with pauses, returning T. A pause may yield a promise: work started elsewhere that
 * the computation would rather wait for (a catalog being fetched) than do itself, blocking.
 */
export type Steps<T> = Generator<void | Promise<unknown>, T, void>;

/**
 * Run to the end without pausing. A yielded promise is not waited for: what the computation needs
 * from it, it gets the blocking way (and the promise's failure, if any, is its to report).
 */
export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (r.value) r.value.catch(() => {});
  }
}

/**
 * Run to the end, letting the event loop turn at every pause. `between` runs after each turn and
 * may throw to stop early (the generator's `finally` blocks still run).
 */
export async function runStepsAsync<T>(steps: Steps<T>, between?: () => void): Promise<T> {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    try {
      if (r.value) await r.value;
      else await new Promise<void>((resolve) => setImmediate(resolve));
      between?.();
    } catch (err) {
      steps.return(undefined as never);
      throw err;
    }
  }
}

