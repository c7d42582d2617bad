/**
 * BIND's `dig` (Debian: bind9-dnsutils) against the embedded DNS over real UDP and TCP on
 * 127.0.0.1:19100, with a stand-in for the host's resolver on 127.0.0.1:19101. dig is a client
 * no one here wrote: if it reads our answers as we mean them, so will other resolvers.
 */
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Forwarder } from '../../src/dns/forwarder.js';
import type { MemoryRecords } from '../../src/dns/memory-records.js';
import { openUpstreamTransport } from '../../src/dns/node-upstream.js';
import { startTcpDnsServer, type TcpDnsServer } from '../../src/dns/node-tcp-server.js';
import { startUdpDnsServer, type UdpDnsServer } from '../../src/dns/node-udp-server.js';
import { DnsResolver } from '../../src/dns/resolver.js';
import { RealClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import { describeInterop } from '../helpers/interop.js';
import { DB1, WEB1, WEB2, decode, swarmRecords, upstreamAnswer } from './fixtures.js';

const run = promisify(execFile);
const HOST = '127.0.0.1';
const PORT = 19100;
const UPSTREAM_PORT = 19101;

interface Dig {
  readonly status: string;
  readonly flags: readonly string[];
  /** Answer section lines as `name ttl class type data`, whitespace collapsed. */
  readonly answers: readonly string[];
  readonly additional: readonly string[];
}

/** Runs dig and reads its header, answer and additional sections. */
async function dig(...args: string[]): Promise<Dig> {
  const { stdout } = await run('dig', [`@${HOST}`, '-p', String(PORT), '+tries=1', '+time=2', '+nocookie', ...args]);
  const status = /status: (\w+)/.exec(stdout)?.[1] ?? '';
  const flags = (/;; flags: ([a-z ]+);/.exec(stdout)?.[1] ?? '').trim().split(' ');
  const section = (title: string): string[] => {
    const match = new RegExp(`;; ${title} SECTION:\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(stdout);
    return (match?.[1] ?? '')
      .split('\n')
      .filter((l) => l && !l.startsWith(';'))
      .map((l) => l.trim().split(/\s+/).join(' '));
  };
  return { status, flags, answers: section('ANSWER'), additional: section('ADDITIONAL') };
}

const data = (d: Dig): string[] => d.answers.map((a) => a.split(' ').slice(4).join(' ')).sort();

describeInterop(
  'dns: dig against the embedded DNS',
  ['dig'],
  () => {
    let records: MemoryRecords;
    let udp: UdpDnsServer;
    let tcp: TcpDnsServer;
    let forwarder: Forwarder;
    let upstream: dgram.Socket;

    beforeAll(async () => {
      records = swarmRecords();
      for (let i = 0; i < 100; i++) records.setTask({ service: 'db', slot: String(10 + i), taskId: `t${String(i).padStart(24, '0')}`, address: `100.64.9.${i}`, healthy: true });
      upstream = dgram.createSocket('udp4');
      upstream.on('message', (msg, rinfo) => {
        const name = decode(msg).questions?.[0]?.name ?? '';
        const reply = name === 'forwarded.example' ? upstreamAnswer(msg, [{ type: 'A', name, ttl: 300, data: '192.0.2.53' }]) : upstreamAnswer(msg, [], { rcode: 3 });
        upstream.send(reply, rinfo.port, rinfo.address);
      });
      await new Promise<void>((resolve) => upstream.bind(UPSTREAM_PORT, HOST, resolve));
      const clock = new RealClock();
      forwarder = new Forwarder({ servers: [{ address: HOST, port: UPSTREAM_PORT }], transport: await openUpstreamTransport({ bindAddress: HOST }), clock, rng: new SeededRng(4) });
      const resolver = new DnsResolver({ records, rng: new SeededRng(4), forwarder });
      udp = await startUdpDnsServer({ address: HOST, port: PORT, handler: resolver, view: 'host' });
      tcp = await startTcpDnsServer({ address: HOST, port: PORT, handler: resolver, clock, view: 'host' });
    });

    afterAll(async () => {
      await udp?.close();
      await tcp?.close();
      await forwarder?.close();
      await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()));
    });

    it('A for a vip service: the VIP, mirror form, short TTL, authoritative', async () => {
      const r = await dig('web', 'A');
      expect(r.status).toBe('NOERROR');
      expect(r.flags).toContain('aa');
      expect(r.answers).toEqual(['web. 5 IN A 127.64.1.2']);
    });

    it('A for tasks.<service> and for a task name', async () => {
      expect(data(await dig('tasks.web'))).toEqual(['127.64.1.10', '127.64.1.11']);
      expect(data(await dig(`web.2.${WEB2}`))).toEqual(['127.64.1.11']);
      expect(data(await dig(`DB.1.${DB1.toUpperCase()}.`))).toEqual(['127.64.1.20']);
    });

    it('SRV with task targets and their addresses as additional data', async () => {
      const r = await dig('_http._tcp.web', 'SRV');
      expect(data(r)).toEqual([`0 1 80 web.1.${WEB1}.`, `0 1 80 web.2.${WEB2}.`]);
      expect(r.additional.filter((l) => l.includes(' A ')).sort()).toEqual([`web.1.${WEB1}. 1 IN A 127.64.1.10`, `web.2.${WEB2}. 1 IN A 127.64.1.11`]);
    });

    it('PTR for a VIP (dig -x) and for a task mirror address', async () => {
      expect(data(await dig('-x', '100.64.1.2'))).toEqual(['web.']);
      expect(data(await dig('-x', '127.64.1.10'))).toEqual([`web.1.${WEB1}.`]);
    });

    it('NODATA for AAAA, NXDOMAIN for a missing service', async () => {
      const aaaa = await dig('web', 'AAAA');
      expect(aaaa.status).toBe('NOERROR');
      expect(aaaa.answers).toEqual([]);
      expect((await dig('nosuch')).status).toBe('NXDOMAIN');
    });

    it('a forwarded name, and the upstream NXDOMAIN of another', async () => {
      expect(data(await dig('forwarded.example'))).toEqual(['192.0.2.53']);
      expect((await dig('missing.example')).status).toBe('NXDOMAIN');
    });

    it('a large answer: truncated over UDP, whereupon dig retries over TCP and gets it all', async () => {
      const r = await dig('db', '+bufsize=1232');
      expect(r.answers).toHaveLength(102);
      expect(tcp.counters.get('dns_tcp_rx_messages')).toBeGreaterThan(0);
      const udpOnly = await dig('db', '+ignore', '+noedns');
      expect(udpOnly.flags).toContain('tc');
      expect(udpOnly.answers.length).toBeLessThan(102);
    });

    it('the answer changes at once when a task dies and when the service scales', async () => {
      expect(data(await dig('tasks.web'))).toEqual(['127.64.1.10', '127.64.1.11']);
      records.setHealthy(WEB1, false);
      const after = await dig('tasks.web');
      expect(data(after)).toEqual(['127.64.1.11']);
      expect(after.answers.every((a) => a.split(' ')[1] === '1')).toBe(true);
      records.setTask({ service: 'web', slot: '4', taskId: 'n3w7a5k0000000000000000ab', address: '100.64.1.13', healthy: true });
      expect(data(await dig('tasks.web'))).toEqual(['127.64.1.11', '127.64.1.13']);
      records.setHealthy(WEB1, true);
    });
  },
  { root: false },
);
