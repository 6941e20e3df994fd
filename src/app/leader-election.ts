/**
 * Lease-based leader election among control-plane replicas (coordination.k8s.io/v1 Lease), for the cluster-wide
 * writers that istiod runs on one replica only (client-go's leaderelection with a LeaseLock; client-node has none).
 * Every write is a replace carrying the resourceVersion just read, so the API server is the arbiter: of two replicas
 * racing for the same Lease one gets 409 Conflict and stays a follower.
 */
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { systemClock, type Clock, type Timer } from '../shared/clock.ts';
import { silentLogger, type Logger } from '../shared/log.ts';

/** istiod's lease for the controller that writes `istio-ca-root-cert` into every namespace (pilot/pkg/leaderelection). */
export const NAMESPACE_CONTROLLER_ELECTION = 'istio-namespace-controller-election';

export interface LeaderElectorOptions {
  kubeConfig: KubeConfig;
  /** Where the Lease lives: the control plane's namespace. */
  namespace: string;
  /** The Lease's name, shared by every replica competing for the same job. */
  name: string;
  /** This replica (istiod uses the pod name); must differ between replicas. */
  identity: string;
  /** How long a lease not renewed stays valid (default 15 s, client-go's and istiod's). */
  leaseDurationSec?: number;
  /** How often the leader renews (default a third of the duration: two renewals may fail before it expires). */
  renewEverySec?: number;
  /** How often a follower tries to acquire (default 2 s, client-go's RetryPeriod). */
  retryEverySec?: number;
  log?: Logger;
  clock?: Clock;
}

const statusOf = (err: unknown): number | undefined => (err as { code?: number } | undefined)?.code;
/** client-node does not deserialize MicroTime: reads carry the RFC 3339 string, our own writes a Date. */
const timeMs = (t: unknown): number => (t === undefined || t === null ? NaN : new Date(t as string | Date).getTime());

type Attempt = 'acquired' | 'held-by-other' | 'error';

export class LeaderElector {
  private readonly core: CoordinationV1Api;
  private readonly o: Required<Omit<LeaderElectorOptions, 'kubeConfig'>>;
  private readonly listeners = new Set<(leader: boolean) => void>();
  private leader = false;
  /** Clock time stamped into renewTime by our last successful write: the lease is ours until that + duration. */
  private renewedAt = 0;
  private loopTimer: Timer | undefined;
  private deadlineTimer: Timer | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  constructor(o: LeaderElectorOptions) {
    this.core = o.kubeConfig.makeApiClient(CoordinationV1Api);
    const leaseDurationSec = o.leaseDurationSec ?? 15;
    this.o = {
      namespace: o.namespace,
      name: o.name,
      identity: o.identity,
      leaseDurationSec,
      renewEverySec: o.renewEverySec ?? leaseDurationSec / 3,
      retryEverySec: o.retryEverySec ?? 2,
      log: (o.log ?? silentLogger).child({ lease: `${o.namespace}/${o.name}`, identity: o.identity }),
      clock: o.clock ?? systemClock,
    };
    if (this.o.renewEverySec >= leaseDurationSec) throw new Error(`renewEverySec (${this.o.renewEverySec}) must be shorter than leaseDurationSec (${leaseDurationSec})`);
  }

  get isLeader(): boolean {
    return this.leader;
  }

  /** Called on every transition (never twice with the same value); returns an unsubscribe function. */
  onChange(cb: (leader: boolean) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.tick();
  }

  /**
   * Stops competing. A leader releases the Lease (empty holderIdentity, as client-go's ReleaseOnCancel does), so a
   * standby takes over on its next retry instead of waiting out the whole lease duration.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.loopTimer) this.o.clock.clearTimeout(this.loopTimer);
    this.loopTimer = undefined;
    await this.running;
    if (this.leader) {
      const released = this.release().then(() => true, (err: unknown) => (this.o.log.warn({ err }, 'releasing the lease failed'), false));
      if (!(await this.within(released, false))) this.o.log.warn('lease not released; it expires on its own');
      this.setLeader(false);
    }
  }

  private tick(): void {
    this.loopTimer = undefined;
    if (this.stopped) return;
    // A request that hangs (a black-holed connection) must not stall the loop for undici's minutes-long timeouts: it
    // counts as failed after a renew period. Should it land later, the next attempt reads the result and goes on.
    this.running = this.within(this.attempt(), 'error').then((outcome) => {
      this.running = undefined;
      if (outcome === 'acquired') {
        this.renewed();
      } else if (this.leader && outcome === 'held-by-other') {
        // Someone else holds an unexpired lease that was ours: we were too slow to renew; stop writing at once.
        this.o.log.warn('lease taken over by another replica');
        this.setLeader(false);
      }
      // On 'error' a leader keeps leading until the deadline timer says the lease has run out.
      if (this.stopped) return;
      // A failed renew is retried at the (shorter) retry period, as client-go does, to keep the lease if possible.
      const every = outcome === 'acquired' ? this.o.renewEverySec : this.o.retryEverySec;
      this.loopTimer = this.o.clock.setTimeout(() => this.tick(), every * 1000);
      this.loopTimer.unref?.();
    });
  }

  /** `p`, or `fallback` when `p` has not settled within a renew period. */
  private within<T>(p: Promise<T>, fallback: T): Promise<T> {
    let timer: Timer | undefined;
    const timeout = new Promise<T>((resolve) => {
      timer = this.o.clock.setTimeout(() => resolve(fallback), Math.max(1, this.o.renewEverySec) * 1000);
    });
    return Promise.race([p, timeout]).finally(() => timer && this.o.clock.clearTimeout(timer));
  }

  private renewed(): void {
    if (this.deadlineTimer) this.o.clock.clearTimeout(this.deadlineTimer);
    // Past renewTime + duration any follower may take the lease, so by then we must have stopped acting as leader —
    // even when a renew request hangs rather than fails. Like client-go (renewDeadline 10 s of a 15 s lease) we stop at
    // two thirds of it: the margin absorbs clock skew between replicas and a write already in flight.
    const left = this.renewedAt + (this.o.leaseDurationSec * 1000 * 2) / 3 - this.o.clock.now();
    if (left <= 0) return; // the write took the whole lease duration: it is already expired for everyone else
    this.deadlineTimer = this.o.clock.setTimeout(() => {
      this.deadlineTimer = undefined;
      if (!this.leader) return;
      this.o.log.warn({ leaseDurationSec: this.o.leaseDurationSec }, 'could not renew the lease within its duration; stepping down');
      this.setLeader(false);
    }, left);
    this.deadlineTimer.unref?.();
    this.setLeader(true);
  }

  private setLeader(leader: boolean): void {
    if (leader === this.leader) return;
    this.leader = leader;
    if (!leader && this.deadlineTimer) {
      this.o.clock.clearTimeout(this.deadlineTimer);
      this.deadlineTimer = undefined;
    }
    this.o.log.info({ leader }, leader ? 'became leader' : 'lost leadership');
    for (const cb of this.listeners) {
      try {
        cb(leader);
      } catch (err) {
        this.o.log.error({ err }, 'leadership listener failed');
      }
    }
  }

  /** One read + (create | replace): acquires an absent, free or expired lease, or renews ours. */
  private async attempt(): Promise<Attempt> {
    const { namespace, name, identity, leaseDurationSec } = this.o;
    const now = this.o.clock.now();
    const stamp = new V1MicroTime(now);
    let lease: V1Lease;
    try {
      lease = await this.core.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (statusOf(err) !== 404) return this.failed(err, 'reading the lease failed');
      try {
        await this.core.createNamespacedLease({
          namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace },
            spec: { holderIdentity: identity, leaseDurationSeconds: leaseDurationSec, acquireTime: stamp, renewTime: stamp, leaseTransitions: 0 },
          },
        });
        this.renewedAt = now;
        return 'acquired';
      } catch (e) {
        // 409: another replica created it between our read and our create; it leads.
        return statusOf(e) === 409 ? 'held-by-other' : this.failed(e, 'creating the lease failed');
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const ours = holder === identity;
    // Expiry is judged by the holder's renewTime against our clock (replicas' clocks are assumed NTP-synced, as
    // the lease API's own field semantics assume); an empty holder is a released lease, free at once.
    // A lease without renewTime counts as expired (NaN compares false).
    const expired = !(timeMs(spec.renewTime) + (spec.leaseDurationSeconds ?? leaseDurationSec) * 1000 >= now);
    if (!ours && holder !== '' && !expired) return 'held-by-other';
    try {
      await this.core.replaceNamespacedLease({
        name,
        namespace,
        // The resourceVersion read above makes this a compare-and-swap: a concurrent acquirer gets 409.
        body: {
          ...lease,
          spec: {
            ...spec,
            holderIdentity: identity,
            leaseDurationSeconds: leaseDurationSec,
            renewTime: stamp,
            acquireTime: ours ? spec.acquireTime : stamp,
            leaseTransitions: (spec.leaseTransitions ?? 0) + (ours ? 0 : 1),
          },
        },
      });
      this.renewedAt = now;
      if (!ours) this.o.log.info({ previous: holder || undefined }, 'acquired the lease');
      return 'acquired';
    } catch (err) {
      // 409 while acquiring: another candidate won the race. 409 while renewing: someone edited our unexpired lease
      // (nobody may take it before it expires): re-read and renew on the next, sooner, attempt.
      return statusOf(err) === 409 && !ours ? 'held-by-other' : this.failed(err, 'writing the lease failed');
    }
  }

  private failed(err: unknown, msg: string): Attempt {
    this.o.log.warn({ err }, msg);
    return 'error';
  }

  private async release(): Promise<void> {
    const { name, namespace, identity } = this.o;
    const lease = await this.core.readNamespacedLease({ name, namespace });
    if (lease.spec?.holderIdentity !== identity) return;
    const stamp = new V1MicroTime(this.o.clock.now());
    // client-go's release: no holder, a 1 s duration and a fresh renewTime, so waiting candidates see it free.
    await this.core.replaceNamespacedLease({
      name,
      namespace,
      body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: stamp, acquireTime: stamp } },
    });
    this.o.log.info('released the lease');
  }
}
