/**
 * Prometheus text exposition format 0.0.4: every component's counters under their own names
 * (`vtep_rx_frames`, `iface_rx_dropped_fragmented`, …), as the agent's /metrics serves them.
 */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export function renderCounters(counters: Readonly<Record<string, number>>, labels: Readonly<Record<string, string>> = {}): string {
  const labelText = Object.entries(labels)
    .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');
  const suffix = labelText ? `{${labelText}}` : '';
  return Object.entries(counters)
    .map(([name, value]) => `# TYPE ${name} counter\n${name}${suffix} ${value}\n`)
    .join('');
}
