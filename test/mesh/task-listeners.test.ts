import { describe, expect, it } from 'vitest';
import { Duplex } from 'node:stream';
import { ManualClock } from '../../src/lib/clock.js';
import { encodeRows } from '../../src/mesh/endpoint-codec.js';
import { EndpointTable } from '../../src/mesh/endpoint-table.js';
import { OverlayTaskListeners, type OverlayTcpSockets } from '../../src/mesh/task-listeners.js';
import type { Upstream } from '../../src/mesh/router.js';
import { row } from './table-fixtures.js';

function fakeSockets(): { sockets: OverlayTcpSockets; listens: Map<string, (s: Duplex) => void> } {
  const listens = new Map<string, (s: Duplex) => void>();
  return {
    listens,
    sockets: {
      connect: () => {
        throw new Error('not used');
      },
      listen: (port, onConnection, options) => {
        const key = `${options.address}:${port}`;
        listens.set(key, onConnection);
        return { close: () => listens.delete(key) };
      },
    },
  };
}

/** A userspace-TCP-like socket: a Duplex whose connection can be aborted (RST). */
function overlaySocket(): Duplex & { aborted: boolean } {
  const s = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } }) as Duplex & { aborted: boolean; connection: { abort(): void } };
  s.aborted = false;
  s.connection = { abort: () => (s.aborted = true) };
  return s;
}

describe('OverlayTaskListeners', () => {
  it('serves our routable tasks’ overlay addresses and TCP ports only, and stops with the row', () => {
    const table = new EndpointTable({ nodeName: 'me', clock: new ManualClock() });
    const { sockets, listens } = fakeSockets();
    const addresses: number[] = [];
    const l = new OverlayTaskListeners({
      table,
      sockets,
      addresses: { addAddress: (ip) => void addresses.push(ip), removeAddress: (ip) => void addresses.splice(addresses.indexOf(ip), 1) },
      connectLocal: () => Promise.reject(new Error('unused')),
      clock: new ManualClock(),
    });
    table.upsertLocal(row('me', 't1', { overlayAddress: 0x64400081, ports: [{ protocol: 'tcp', target: 80, hostPort: 18001 }, { protocol: 'udp', target: 53, hostPort: 18002 }] }));
    table.notifyMsg(encodeRows([{ row: row('other', 't2', { overlayAddress: 0x64400082 }), version: 1, deleted: false }]));
    expect([...listens.keys()]).toEqual([`${0x64400081}:80`]);
    expect(addresses).toEqual([0x64400081]);
    // Down: new overlay connections are refused (RST to the SYN), so remote agents retry elsewhere.
    table.setHealth('web', 't1', 'unhealthy');
    expect(listens.size).toBe(0);
    expect(addresses).toEqual([0x64400081]);
    table.setHealth('web', 't1', 'healthy');
    expect([...listens.keys()]).toEqual([`${0x64400081}:80`]);
    table.deleteLocal('web', 't1');
    expect(listens.size).toBe(0);
    expect(addresses).toEqual([]);
    l.close();
    table.close();
  });

  it('resets the overlay connection when the task cannot be reached, so the remote side ejects it', async () => {
    const table = new EndpointTable({ nodeName: 'me', clock: new ManualClock() });
    const { sockets, listens } = fakeSockets();
    const tried: Upstream[] = [];
    const l = new OverlayTaskListeners({
      table,
      sockets,
      addresses: { addAddress: () => undefined, removeAddress: () => undefined },
      connectLocal: (u) => {
        tried.push(u);
        return Promise.reject(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }));
      },
      clock: new ManualClock(),
    });
    table.upsertLocal(row('me', 't1', { overlayAddress: 0x64400081, hostAddress: 0x7f000001, ports: [{ protocol: 'tcp', target: 80, hostPort: 18005 }] }));
    const s = overlaySocket();
    listens.get(`${0x64400081}:80`)!(s);
    await new Promise((r) => setImmediate(r));
    expect(tried.map((u) => `${u.host}:${u.port}`)).toEqual(['127.0.0.1:18005']);
    expect(s.aborted).toBe(true);
    expect(l.counters.get('mesh_upstream_cx_connect_fail')).toBe(1);
    l.close();
    table.close();
  });
});
