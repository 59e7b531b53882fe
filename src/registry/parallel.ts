// Transfers run a few at a time: pull and push each keep a small number of blobs in flight.

/**
 * `fn` over `items`, at most `limit` at a time, in order of start. After a failure no new item
 * starts; the ones running are waited for (so none outlives the call), then the first error is thrown.
 */
export async function runLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (!failure && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw (failure as { err: unknown }).err;
}
