import { describe, expect, it } from 'vitest';
import { mergeExposition, renderCounters } from '../../src/lib/metrics.js';

describe('mergeExposition', () => {
  it('gives each family one TYPE line and keeps its samples together (the same counter rendered with two label sets made a strict parser refuse /metrics)', () => {
    const text = renderCounters({ dns_queries: 3, dns_drops: 1 }, { node: 'n1' }) + renderCounters({ vtep_rx_frames: 9 }) + renderCounters({ dns_queries: 5 }, { node: 'n1', path: 'overlay' });
    expect(mergeExposition(text)).toBe(
      '# TYPE dns_queries counter\ndns_queries{node="n1"} 3\ndns_queries{node="n1",path="overlay"} 5\n' +
        '# TYPE dns_drops counter\ndns_drops{node="n1"} 1\n' +
        '# TYPE vtep_rx_frames counter\nvtep_rx_frames 9\n',
    );
  });

  it('keeps a histogram\'s buckets, sum and count under its one TYPE line', () => {
    const a = '# HELP mesh_connect_seconds Upstream connect time\n# TYPE mesh_connect_seconds histogram\nmesh_connect_seconds_bucket{service="a",le="0.1"} 1\nmesh_connect_seconds_sum{service="a"} 0.05\nmesh_connect_seconds_count{service="a"} 1\n';
    const b = '# TYPE mesh_connect_seconds histogram\nmesh_connect_seconds_bucket{service="b",le="0.1"} 2\nmesh_connect_seconds_count{service="b"} 2\n';
    const merged = mergeExposition(a + renderCounters({ x_total: 1 }) + b);
    expect(merged.match(/# TYPE mesh_connect_seconds /g)).toHaveLength(1);
    expect(merged.split('\n').slice(0, 7)).toEqual([
      '# HELP mesh_connect_seconds Upstream connect time',
      '# TYPE mesh_connect_seconds histogram',
      'mesh_connect_seconds_bucket{service="a",le="0.1"} 1',
      'mesh_connect_seconds_sum{service="a"} 0.05',
      'mesh_connect_seconds_count{service="a"} 1',
      'mesh_connect_seconds_bucket{service="b",le="0.1"} 2',
      'mesh_connect_seconds_count{service="b"} 2',
    ]);
  });
});
