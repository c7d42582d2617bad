import { describe, expect, it } from 'vitest';
import { ipToBytes, ipToString } from '../../src/gossip/ip.js';
import { hex } from '../helpers/hex.js';

describe('IP wire bytes ↔ text', () => {
  it.each([
    ['7f000001', '127.0.0.1'],
    ['00000000000000000000ffff7f000001', '127.0.0.1'], // Go's 16-byte IPv4 from a 0.0.0.0 bind
    ['00000000000000000000000000000001', '::1'],
    ['20010db8000000000000000000000001', '2001:db8::1'],
    ['20010db8000100000000000100000001', '2001:db8:1::1:0:1'],
    ['fe800000000000000202b3fffe1e8329', 'fe80::202:b3ff:fe1e:8329'],
    ['00000000000000000000000000000000', '::'],
  ])('%s is %s', (h, text) => {
    expect(ipToString(hex(h))).toBe(text);
  });

  it.each([
    ['198.18.0.1', 'c6120001'],
    ['::1', '00000000000000000000000000000001'],
    ['2001:db8::1', '20010db8000000000000000000000001'],
    ['::ffff:127.0.0.1', '00000000000000000000ffff7f000001'],
    ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008'],
  ])('%s encodes as %s', (text, h) => {
    expect(ipToBytes(text)).toEqual(hex(h));
  });

  it.each(['', '1.2.3', '1.2.3.256', '01.2.3.4', 'a::b::c', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', 'g::1', 'localhost'])('refuses %j', (text) => {
    expect(ipToBytes(text)).toBeUndefined();
  });

  it('refuses byte strings of other lengths', () => {
    expect(ipToString(new Uint8Array(5))).toBeUndefined();
    expect(ipToString(new Uint8Array(0))).toBeUndefined();
  });
});
