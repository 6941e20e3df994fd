/**
 * Reconcile plumbing for kube-mode writers: a keyed work queue with per-key backoff, and a list+watch that restarts
 * itself. Shared by the root-cert publisher and the webhook caBundle patcher (kube-writers.ts).
 */
import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../shared/log.ts';

/**
 * Objects (keys) to reconcile, one at a time; a key queued again while waiting runs once. `work` resolves true to be
 * retried later (a conflict with a newer version in flight); a thrown error is logged and retried with backoff.
 */
export function keyedQueue(work: (key: string) => Promise<boolean>, log: Logger, retryMs: number) {
  const pending = new Set<string>();
  const delays = new Map<string, number>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let busy = false;
  let stopped = false;
  const retry = (key: string) => {
    const delay = delays.get(key) ?? retryMs;
    delays.set(key, Math.min(delay * 2, 30_000));
    const t = setTimeout(() => {
      timers.delete(t);
      add(key);
    }, delay);
    t.unref?.();
    timers.add(t);
  };
  const drain = async () => {
    if (busy) return;
    busy = true;
    // A Set iterates keys added during the loop too, so nothing queued meanwhile waits for another drain.
    for (const key of pending) {
      pending.delete(key);
      if (stopped) break;
      const again = await work(key).catch((err: unknown) => {
        log.warn({ key, err }, 'write failed; retrying');
        return true;
      });
      if (again) retry(key);
      else delays.delete(key);
    }
    busy = false;
  };
  const add = (key: string) => {
    if (stopped) return;
    pending.add(key);
    void drain();
  };
  const stop = () => {
    stopped = true;
    pending.clear();
    for (const t of timers) clearTimeout(t);
  };
  return { add, stop };
}

export type KeyedQueue = ReturnType<typeof keyedQueue>;

/**
 * A list+watch that restarts itself with backoff (client-node's ListWatch stops on any error but 410 and timeouts);
 * its cache (`lw`) is what every write is compared against.
 */
export function collection<T extends KubernetesObject>(
  kc: KubeConfig,
  path: string,
  list: () => Promise<KubernetesListObject<T>>,
  onEvent: (obj: T) => void,
  o: { log: Logger; retryMs: number; labelSelector?: string; fieldSelector?: string },
): { lw: ListWatch<T>; start(): Promise<void>; stop(): Promise<void> } {
  const lw = new ListWatch<T>(path, new Watch(kc), list, false, o.labelSelector, o.fieldSelector);
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let delay = o.retryMs;
  lw.on('change', onEvent);
  lw.on('error', (err: unknown) => {
    if (stopped) return; // stop() aborts the watch, which reports the abort as an error
    o.log.warn({ path, err, retryInMs: delay }, 'list/watch failed; retrying');
    timer = setTimeout(() => void (stopped || lw.start()), delay);
    delay = Math.min(delay * 2, 30_000);
  });
  lw.on('connect', () => {
    if (lw.latestResourceVersion()) delay = o.retryMs;
  });
  return {
    lw,
    start: () => lw.start(),
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await lw.stop();
    },
  };
}

export type Collection<T extends KubernetesObject> = ReturnType<typeof collection<T>>;
