import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { ForwardingTable } from '../../src/overlay/forwarding-table.js';
import { encodeRows } from '../../src/mesh/endpoint-codec.js';
import { EndpointTable } from '../../src/mesh/endpoint-table.js';
import { overlayPeerTarget, syncOverlayPeers } from '../../src/mesh/overlay-peers.js';
import { macForIpv4 } from '../../src/wire/address.js';
import { row } from './table-fixtures.js';

describe('syncOverlayPeers', () => {
  it('programs MAC → VTEP and a static neighbour for remote tasks only, and removes them with the row', () => {
    const table = new EndpointTable({ nodeName: 'me', clock: new ManualClock() });
    const fdb = new ForwardingTable();
    const neighbours = new Set<number>();
    const iface = { addStaticNeighbor: (ip: number) => void neighbours.add(ip), neighbors: { delete: (ip: number) => neighbours.delete(ip) } };
    table.notifyMsg(encodeRows([{ row: row('other', 'early', { overlayAddress: 0x64400081 }), version: 1, deleted: false }]));
    const stop = syncOverlayPeers(table, overlayPeerTarget(fdb, iface, 4096));
    expect(fdb.lookup(4096, macForIpv4(0x64400081))).toEqual({ address: '127.0.0.2', port: 4789 });
    table.upsertLocal(row('me', 'mine', { overlayAddress: 0x64400082 }));
    expect(fdb.lookup(4096, macForIpv4(0x64400082))).toBeUndefined();
    // The remote task moves to another VTEP.
    table.notifyMsg(encodeRows([{ row: row('other', 'early', { overlayAddress: 0x64400081, vtepAddress: 0x7f000003 }), version: 2, deleted: false }]));
    expect(fdb.lookup(4096, macForIpv4(0x64400081))).toEqual({ address: '127.0.0.3', port: 4789 });
    expect([...neighbours]).toEqual([0x64400081]);
    table.memberDead('other');
    expect(fdb.lookup(4096, macForIpv4(0x64400081))).toBeUndefined();
    expect(neighbours.size).toBe(0);
    stop();
    table.close();
  });

  it('leaves a newer claim on an address in place when an older row goes', () => {
    const table = new EndpointTable({ nodeName: 'me', clock: new ManualClock() });
    const fdb = new ForwardingTable();
    syncOverlayPeers(table, overlayPeerTarget(fdb));
    table.notifyMsg(encodeRows([{ row: row('a', 'old', { overlayAddress: 0x64400090 }), version: 1, deleted: false }]));
    table.notifyMsg(encodeRows([{ row: row('b', 'new', { overlayAddress: 0x64400090, vtepAddress: 0x7f000004 }), version: 2, deleted: false }]));
    table.notifyMsg(encodeRows([{ row: row('a', 'old', { overlayAddress: 0x64400090 }), version: 3, deleted: true }]));
    expect(fdb.lookup(4096, macForIpv4(0x64400090))).toEqual({ address: '127.0.0.4', port: 4789 });
    table.close();
  });
});
