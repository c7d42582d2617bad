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

/**
 * One exposition out of parts rendered separately: each metric family once, its `# HELP` and
 * `# TYPE` first and every sample of it together, as the format requires (a strict parser
 * refuses a family whose TYPE appears twice or whose samples are split). Components render
 * their own counters with their own labels; the agent joins them through this. A sample's
 * family is its name, or for `_bucket`, `_sum` and `_count` the histogram or summary it
 * belongs to.
 */
export function mergeExposition(text: string): string {
  const families = new Map<string, { meta: string[]; samples: string[] }>();
  const types = new Map<string, string>();
  const familyOf = (name: string): string => {
    const base = name.replace(/_(bucket|sum|count)$/, '');
    return base !== name && (types.get(base) === 'histogram' || types.get(base) === 'summary') ? base : name;
  };
  const entry = (name: string): { meta: string[]; samples: string[] } => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { meta: [], samples: [] }));
    return f;
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (TYPE|HELP) (\S+)(?: (.*))?$/.exec(line);
    if (meta) {
      const [, kind, name] = meta as unknown as [string, string, string];
      if (kind === 'TYPE') {
        if (types.has(name)) continue;
        types.set(name, meta[3] ?? 'untyped');
      } else if (entry(name).meta.some((m) => m.startsWith('# HELP '))) continue;
      entry(name).meta.push(line);
      continue;
    }
    if (line.startsWith('#')) continue;
    const name = /^[^{\s]+/.exec(line)?.[0];
    if (name) entry(familyOf(name)).samples.push(line);
  }
  let out = '';
  for (const f of families.values()) {
    const help = f.meta.filter((m) => m.startsWith('# HELP '));
    out += [...help, ...f.meta.filter((m) => !help.includes(m)), ...f.samples].join('\n') + '\n';
  }
  return out;
}
