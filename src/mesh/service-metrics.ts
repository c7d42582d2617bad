/**
 * The routing mesh's per-service and per-endpoint statistics (issue 6, "Metrics"), in Envoy's
 * words: per service (Envoy's cluster) downstream connections, bytes each way, upstream connect
 * failures and replays, and two histograms — upstream connect time and downstream connection
 * length; per endpoint (a task: Envoy's host) connections, connect failures and bytes.
 *
 * Label cardinality is bounded: at most `maxServices` services and `maxEndpoints` endpoints
 * are tracked one by one; the rest are summed under `service="_other"` / `task="_other"`.
 * An endpoint that leaves the table is forgotten (`forgetEndpoint`), so task churn does not
 * grow the set; per-service series stay for the agent's life.
 *
 * Bytes are added when a connection ends (no work per chunk on the hot path): a long-lived
 * connection's bytes show when it closes. After a replay, a connection's bytes count for the
 * endpoint that served it last.
 */

/** `{k="v",…}` with Prometheus escaping; empty for no labels. */
export function renderLabels(labels: Readonly<Record<string, string>>): string {
  const text = Object.entries(labels)
    .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');
  return text ? `{${text}}` : '';
}

/** Seconds (Prometheus base units): 0.5 ms … 5 s for connects. */
export const CONNECT_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const;
/** Seconds: 1 ms … 1 h for connection lengths. */
export const LENGTH_BUCKETS_S = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600] as const;

export const DEFAULT_MAX_SERVICES = 256;
export const DEFAULT_MAX_ENDPOINTS = 1024;
export const OTHER_LABEL = '_other';

/** A Prometheus histogram: cumulative rendering, per-bucket counts kept. */
export class Histogram {
  readonly bounds: readonly number[];
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.#counts = new Array<number>(bounds.length).fill(0);
  }

  observe(value: number): void {
    this.#sum += value;
    this.#count++;
    for (let i = 0; i < this.bounds.length; i++) {
      if (value <= this.bounds[i]!) {
        this.#counts[i]!++;
        return;
      }
    }
  }

  get count(): number {
    return this.#count;
  }

  get sum(): number {
    return this.#sum;
  }

  /** `name_bucket{…,le="…"}` (cumulative, then `+Inf`), `name_sum`, `name_count`. */
  render(name: string, labels: Readonly<Record<string, string>>): string {
    let out = '';
    let cumulative = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += this.#counts[i]!;
      out += `${name}_bucket${renderLabels({ ...labels, le: String(this.bounds[i]) })} ${cumulative}\n`;
    }
    out += `${name}_bucket${renderLabels({ ...labels, le: '+Inf' })} ${this.#count}\n`;
    out += `${name}_sum${renderLabels(labels)} ${this.#sum}\n`;
    out += `${name}_count${renderLabels(labels)} ${this.#count}\n`;
    return out;
  }
}

const SERVICE_COUNTERS = [
  'mesh_service_downstream_cx_total',
  'mesh_service_downstream_cx_rx_bytes_total',
  'mesh_service_downstream_cx_tx_bytes_total',
  /** No endpoint could be connected: the client's connection was closed at once. */
  'mesh_service_downstream_cx_no_upstream',
  'mesh_service_upstream_cx_connect_fail',
  'mesh_service_upstream_rq_replay',
] as const;
export type ServiceCounter = (typeof SERVICE_COUNTERS)[number];

const ENDPOINT_COUNTERS = [
  'mesh_endpoint_upstream_cx_total',
  'mesh_endpoint_upstream_cx_connect_fail',
  'mesh_endpoint_upstream_cx_rx_bytes_total',
  'mesh_endpoint_upstream_cx_tx_bytes_total',
] as const;
export type EndpointCounter = (typeof ENDPOINT_COUNTERS)[number];

interface ServiceStats {
  readonly counts: Record<ServiceCounter, number>;
  readonly connect: Histogram;
  readonly length: Histogram;
}

interface EndpointStats {
  readonly service: string;
  readonly task: string;
  readonly node: string;
  readonly counts: Record<EndpointCounter, number>;
}

/** Who an endpoint is, for its labels. */
export interface EndpointIdentity {
  /** Unique across services (the endpoint table's row key). */
  readonly key: string;
  readonly service: string;
  readonly task: string;
  readonly node: string;
}

export interface ServiceMetricsOptions {
  readonly maxServices?: number;
  readonly maxEndpoints?: number;
}

export class ServiceMetrics {
  readonly #maxServices: number;
  readonly #maxEndpoints: number;
  readonly #services = new Map<string, ServiceStats>();
  readonly #endpoints = new Map<string, EndpointStats>();

  constructor(options: ServiceMetricsOptions = {}) {
    this.#maxServices = options.maxServices ?? DEFAULT_MAX_SERVICES;
    this.#maxEndpoints = options.maxEndpoints ?? DEFAULT_MAX_ENDPOINTS;
  }

  inc(service: string, name: ServiceCounter, by = 1): void {
    this.#service(service).counts[name] += by;
  }

  incEndpoint(e: EndpointIdentity, name: EndpointCounter, by = 1): void {
    this.#endpoint(e).counts[name] += by;
  }

  /** One successful upstream connect took `ms`. */
  observeConnect(service: string, ms: number): void {
    this.#service(service).connect.observe(ms / 1000);
  }

  /** A downstream connection lasted `ms`. */
  observeLength(service: string, ms: number): void {
    this.#service(service).length.observe(ms / 1000);
  }

  /** The endpoint left the table: its series go. */
  forgetEndpoint(key: string): void {
    this.#endpoints.delete(key);
  }

  /** A service's counter, for tests and debugging (0 when unknown). */
  get(service: string, name: ServiceCounter): number {
    return this.#services.get(service)?.counts[name] ?? 0;
  }

  getEndpoint(key: string, name: EndpointCounter): number {
    return this.#endpoints.get(key)?.counts[name] ?? 0;
  }

  histogram(service: string, which: 'connect' | 'length'): Histogram | undefined {
    return this.#services.get(service)?.[which];
  }

  /** Prometheus text: one `# TYPE` per family, then every series of it, `labels` on each. */
  render(labels: Readonly<Record<string, string>> = {}): string {
    let out = '';
    for (const name of SERVICE_COUNTERS) {
      if (this.#services.size === 0) break;
      out += `# TYPE ${name} counter\n`;
      for (const [service, s] of this.#services) out += `${name}${renderLabels({ ...labels, service })} ${s.counts[name]}\n`;
    }
    for (const name of ENDPOINT_COUNTERS) {
      if (this.#endpoints.size === 0) break;
      out += `# TYPE ${name} counter\n`;
      for (const e of this.#endpoints.values()) out += `${name}${renderLabels({ ...labels, service: e.service, task: e.task, node: e.node })} ${e.counts[name]}\n`;
    }
    if (this.#services.size > 0) {
      out += '# TYPE mesh_service_upstream_cx_connect_seconds histogram\n';
      for (const [service, s] of this.#services) out += s.connect.render('mesh_service_upstream_cx_connect_seconds', { ...labels, service });
      out += '# TYPE mesh_service_downstream_cx_length_seconds histogram\n';
      for (const [service, s] of this.#services) out += s.length.render('mesh_service_downstream_cx_length_seconds', { ...labels, service });
    }
    return out;
  }

  #service(name: string): ServiceStats {
    let s = this.#services.get(name);
    if (s) return s;
    const key = this.#services.size >= this.#maxServices ? OTHER_LABEL : name;
    s = this.#services.get(key);
    if (s) return s;
    s = { counts: zeros(SERVICE_COUNTERS), connect: new Histogram(CONNECT_BUCKETS_S), length: new Histogram(LENGTH_BUCKETS_S) };
    this.#services.set(key, s);
    return s;
  }

  #endpoint(e: EndpointIdentity): EndpointStats {
    let s = this.#endpoints.get(e.key);
    if (s) return s;
    const full = this.#endpoints.size >= this.#maxEndpoints;
    const key = full ? OTHER_LABEL : e.key;
    s = this.#endpoints.get(key);
    if (s) return s;
    s = full ? { service: OTHER_LABEL, task: OTHER_LABEL, node: OTHER_LABEL, counts: zeros(ENDPOINT_COUNTERS) } : { service: e.service, task: e.task, node: e.node, counts: zeros(ENDPOINT_COUNTERS) };
    this.#endpoints.set(key, s);
    return s;
  }
}

function zeros<K extends string>(names: readonly K[]): Record<K, number> {
  return Object.fromEntries(names.map((n) => [n, 0])) as Record<K, number>;
}
