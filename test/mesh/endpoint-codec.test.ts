import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  type EndpointRow,
  type VersionedRow,
  MAX_NAME_BYTES,
  decodeMessage,
  encodeRows,
  encodeState,
  supersedes,
  validateRow,
} from '../../src/mesh/endpoint-codec.js';
import { hex, toHex } from '../helpers/hex.js';
import { FUZZ_RUNS, PROPERTY_RUNS } from '../helpers/fuzz.js';

const ROW: EndpointRow = {
  service: 'web',
  taskId: 't1',
  slot: 1,
  node: 'n1',
  overlayAddress: 0x64400005, // 100.64.0.5
  vni: 4096,
  vtepAddress: 0x7f000002, // 127.0.0.2
  vtepPort: 4789,
  hostAddress: 0x7f000001,
  ports: [{ protocol: 'tcp', target: 80, hostPort: 18080 }],
  health: 'healthy',
};
const V: VersionedRow = { row: ROW, version: 7, deleted: false };

// The one-row broadcast of ROW at version 7, written out by hand from the layout in endpoint-codec.ts.
const ROW_BYTES = hex(`
  6d 01 01 01
  00 00000000 00000007
  03 776562 02 7431 02 6e31
  00000001 64400005 00001000 7f000002 12b5 7f000001 02 01
  00 0050 46a0`);

describe('endpoint codec', () => {
  it('encodes a row as the documented bytes', () => {
    expect(toHex(encodeRows([V]))).toBe(toHex(ROW_BYTES));
  });

  it('decodes the documented bytes', () => {
    expect(decodeMessage(ROW_BYTES, 100)).toEqual({ ok: true, value: { kind: 'rows', rows: [V] } });
  });

  it('round-trips a state with a Lamport time above 2^32', () => {
    const rows = [V, { row: { ...ROW, taskId: 't2', health: 'starting' as const, ports: [] }, version: 2 ** 40, deleted: true }];
    const decoded = decodeMessage(encodeState(2 ** 40 + 5, rows), 100);
    expect(decoded).toEqual({ ok: true, value: { kind: 'state', ltime: 2 ** 40 + 5, rows } });
  });

  it.each([
    ['empty', '', 'truncated'],
    ['serf push/pull state', '02 81a3', 'bad-magic'],
    ['a future version', '6d 02 01 00', 'unsupported-version'],
    ['an unknown kind', '6d 01 09 00', 'unknown-kind'],
    ['a count the bytes cannot hold', '6d 01 01 05 00', 'truncated'],
    ['a Lamport time past 2^53', '6d 01 02 00200000 00000000 00000000', 'bad-version-number'],
  ])('refuses %s', (_what, bytes, error) => {
    expect(decodeMessage(hex(bytes), 100)).toEqual({ ok: false, error });
  });

  it('refuses every truncation of a valid message, and trailing bytes', () => {
    for (let n = 0; n < ROW_BYTES.length; n++) expect(decodeMessage(ROW_BYTES.subarray(0, n), 100).ok).toBe(false);
    const longer = new Uint8Array(ROW_BYTES.length + 1);
    longer.set(ROW_BYTES);
    expect(decodeMessage(longer, 100)).toEqual({ ok: false, error: 'trailing-bytes' });
  });

  it('refuses a state with more rows than the table may hold', () => {
    expect(decodeMessage(encodeState(1, [V, { ...V, row: { ...ROW, taskId: 'x' } }]), 1)).toEqual({ ok: false, error: 'too-many-rows' });
  });

  it.each([
    ['bad flags', 4, 0x02, 'bad-flags'],
    ['an empty name', 13, 0x00, 'bad-name'],
    ['invalid UTF-8 in a name', 14, 0xff, 'bad-name'],
    ['an unknown health', 45, 0x07, 'bad-health'],
    ['an unknown protocol', 47, 0x05, 'bad-protocol'],
  ])('refuses a row with %s', (_what, offset, value, error) => {
    const bytes = ROW_BYTES.slice();
    bytes[offset] = value;
    expect(decodeMessage(bytes, 100)).toEqual({ ok: false, error });
  });

  it('validates rows before they are encoded', () => {
    expect(validateRow(ROW)).toBeUndefined();
    expect(validateRow({ ...ROW, service: '' })).toMatch(/service/);
    expect(validateRow({ ...ROW, node: 'x'.repeat(MAX_NAME_BYTES + 1) })).toMatch(/node/);
    expect(validateRow({ ...ROW, ports: [{ protocol: 'tcp', target: 0, hostPort: 1 }] })).toMatch(/ports/);
    expect(() => encodeRows([{ ...V, row: { ...ROW, slot: -1 } }])).toThrow(RangeError);
  });

  describe('last-writer-wins', () => {
    it('prefers the higher version, then a tombstone, then the larger encoding', () => {
      expect(supersedes({ ...V, version: 8 }, V)).toBe(true);
      expect(supersedes(V, { ...V, version: 8 })).toBe(false);
      expect(supersedes({ ...V, deleted: true }, V)).toBe(true);
      expect(supersedes(V, { ...V, deleted: true })).toBe(false);
      const a = { ...V, row: { ...ROW, health: 'healthy' as const } };
      const b = { ...V, row: { ...ROW, health: 'unhealthy' as const } };
      expect(supersedes(b, a)).toBe(true);
      expect(supersedes(a, b)).toBe(false);
      expect(supersedes(V, V)).toBe(false);
    });
  });

  describe('properties', () => {
    const name = fc.string({ minLength: 1, maxLength: 20 }).filter((s) => new TextEncoder().encode(s).length <= MAX_NAME_BYTES);
    const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
    const port = fc.integer({ min: 1, max: 0xffff });
    const arbRow: fc.Arbitrary<VersionedRow> = fc.record({
      row: fc.record({
        service: name,
        taskId: name,
        slot: u32,
        node: name,
        overlayAddress: u32,
        vni: u32,
        vtepAddress: u32,
        vtepPort: fc.integer({ min: 0, max: 0xffff }),
        hostAddress: u32,
        ports: fc.array(fc.record({ protocol: fc.constantFrom('tcp' as const, 'udp' as const), target: port, hostPort: port }), { maxLength: 16 }),
        health: fc.constantFrom('none' as const, 'starting' as const, 'healthy' as const, 'unhealthy' as const),
      }),
      version: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
      deleted: fc.boolean(),
    });

    it('round-trips any valid rows and state', () => {
      fc.assert(
        fc.property(fc.array(arbRow, { minLength: 1, maxLength: 5 }), fc.nat({ max: Number.MAX_SAFE_INTEGER }), (rows, ltime) => {
          expect(decodeMessage(encodeRows(rows), 10)).toEqual({ ok: true, value: { kind: 'rows', rows } });
          expect(decodeMessage(encodeState(ltime, rows), 10)).toEqual({ ok: true, value: { kind: 'state', ltime, rows } });
        }),
        { numRuns: PROPERTY_RUNS },
      );
    });

    it('never throws on random bytes', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
          expect(typeof decodeMessage(bytes, 100).ok).toBe('boolean');
        }),
        { numRuns: FUZZ_RUNS },
      );
    });

    it('never throws on valid messages with bytes flipped, and decodes only to valid rows', () => {
      fc.assert(
        fc.property(arbRow, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (row, flips) => {
          const bytes = encodeState(3, [row]);
          for (const [at, value] of flips) bytes[3 + (at % (bytes.length - 3))] = value;
          const decoded = decodeMessage(bytes, 100);
          if (decoded.ok) for (const r of decoded.value.rows) expect(validateRow(r.row)).toBeUndefined();
        }),
        { numRuns: FUZZ_RUNS },
      );
    });
  });
});
