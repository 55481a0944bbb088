/**
 * The suite's one way to wait for something: poll a condition with a generous timeout and say what
 * was awaited when it gives up. Used by the process clusters (cluster.ts) and the in-process one
 * (in-process-cluster.ts) alike.
 */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The least patience of every wait in the suite. A test passes or fails on what tandem did, never
 * on how fast the machine is (docs/reliability.md): a condition that holds within 2 s on an idle
 * machine may take several times that with a core kept busy by something else, so a wait never
 * gives up before this. A wait that succeeds returns as soon as its condition holds; only a
 * failing test waits the whole time.
 */
export const WAIT_FLOOR_MS = 20_000;

/**
 * Polls `cond` every 10 ms until true or the timeout (at least WAIT_FLOOR_MS); returns the elapsed
 * ms, throws on timeout. The elapsed time is for diagnostics, never for an assertion.
 */
export async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs: number, what = 'condition'): Promise<number> {
  const t0 = Date.now();
  timeoutMs = Math.max(timeoutMs, WAIT_FLOOR_MS);
  while (Date.now() - t0 < timeoutMs) {
    if (await cond()) return Date.now() - t0;
    await sleep(10);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** `waitUntil` with the suite's floor as its timeout: what most tests want. */
export function waitFor(cond: () => boolean | Promise<boolean>, what = 'condition'): Promise<number> {
  return waitUntil(cond, WAIT_FLOOR_MS, what);
}
