/**
 * The listeners and the upstream transport on real sockets, 127.0.0.1 ports 19000–19099 (unique
 * to this file). The TCP server runs on a ManualClock so its idle timeout is driven, not waited.
 */
import dgram from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Forwarder } from '../../src/dns/forwarder.js';
import { startEmbeddedDns } from '../../src/dns/node-dns-server.js';
import { openUpstreamTransport } from '../../src/dns/node-upstream.js';
import { startTcpDnsServer } from '../../src/dns/node-tcp-server.js';
import { startUdpDnsServer } from '../../src/dns/node-udp-server.js';
import { DnsResolver, type DnsHandler } from '../../src/dns/resolver.js';
import { LengthPrefixedReader, frameMessage } from '../../src/dns/tcp-framing.js';
import { ManualClock, RealClock } from '../../src/lib/clock.js';
import { DnsSocketError } from '../../src/lib/errors.js';
import { SeededRng } from '../../src/lib/rng.js';
import { WEB1, answersOf, decode, query, swarmRecords, upstreamAnswer } from './fixtures.js';

const HOST = '127.0.0.1';
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A UDP client socket; every datagram it receives goes to `received`. */
async function udpClient(): Promise<{ send(bytes: Uint8Array, port: number): void; next(): Promise<Buffer> }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, HOST, resolve));
  cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  const queue: Buffer[] = [];
  const waiters: ((b: Buffer) => void)[] = [];
  socket.on('message', (msg) => {
    const waiter = waiters.shift();
    if (waiter) waiter(msg);
    else queue.push(msg);
  });
  return {
    send: (bytes, port) => socket.send(bytes, port, HOST),
    next: () => {
      const ready = queue.shift();
      return ready ? Promise.resolve(ready) : new Promise<Buffer>((resolve) => waiters.push(resolve));
    },
  };
}

/** A TCP client: writes raw bytes, reads whole DNS messages, reports the server closing. */
async function tcpClient(port: number) {
  const socket = net.connect({ host: HOST, port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  cleanups.push(() => void socket.destroy());
  const reader = new LengthPrefixedReader();
  const messages: Uint8Array[] = [];
  const waiters: (() => void)[] = [];
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => {});
  socket.on('data', (chunk) => {
    messages.push(...reader.push(chunk));
    for (const w of waiters.splice(0)) w();
  });
  socket.on('close', () => {
    for (const w of waiters.splice(0)) w();
  });
  return {
    socket,
    closed,
    write: (bytes: Uint8Array) => socket.write(bytes),
    async read(n: number): Promise<Uint8Array[]> {
      while (messages.length < n && !socket.destroyed) await new Promise<void>((resolve) => waiters.push(resolve));
      return messages.splice(0, n);
    },
  };
}

/** Lets the event loop turn until `condition` holds; fails after a bounded number of turns. */
async function until(condition: () => boolean, turns = 10_000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    if (condition()) return;
  }
  throw new Error('Condition not met');
}

function resolverOn(records = swarmRecords()) {
  return { records, resolver: new DnsResolver({ records, rng: new SeededRng(1) }) };
}

describe('UDP listener', () => {
  it('answers queries, drops junk without an ID, and answers FORMERR to junk with one', async () => {
    const { resolver } = resolverOn();
    const server = await startUdpDnsServer({ address: HOST, port: 19001, handler: resolver, view: 'host' });
    cleanups.push(() => server.close());
    const client = await udpClient();
    client.send(new Uint8Array([1]), server.port);
    client.send(Buffer.from('beef0100000100000000000005', 'hex'), server.port);
    client.send(query('web', 'A', { id: 7 }), server.port);
    // Loopback keeps order: the first answer is the FORMERR, the second the A record; the 1-byte junk got none.
    const formerr = decode(await client.next());
    expect(formerr.id).toBe(0xbeef);
    expect(formerr.rcode).toBe('FORMERR');
    const answer = decode(await client.next());
    expect(answer.id).toBe(7);
    expect(answersOf(answer)).toEqual(['127.64.1.2']);
    expect(resolver.counters.get('dns_dropped_short')).toBe(1);
    expect(server.counters.get('dns_udp_rx')).toBe(3);
    expect(server.counters.get('dns_udp_tx')).toBe(2);
  });

  it('answers the changed records on the next query', async () => {
    const { resolver, records } = resolverOn();
    const server = await startUdpDnsServer({ address: HOST, port: 19002, handler: resolver });
    cleanups.push(() => server.close());
    const client = await udpClient();
    client.send(query('tasks.web'), server.port);
    expect(answersOf(decode(await client.next()))).toEqual(['127.64.1.10', '127.64.1.11']);
    records.setHealthy(WEB1, false);
    client.send(query('tasks.web'), server.port);
    expect(answersOf(decode(await client.next()))).toEqual(['127.64.1.11']);
  });

  it('refuses to bind an address already bound, with DnsSocketError', async () => {
    const { resolver } = resolverOn();
    const server = await startUdpDnsServer({ address: HOST, port: 19003, handler: resolver });
    cleanups.push(() => server.close());
    await expect(startUdpDnsServer({ address: HOST, port: 19003, handler: resolver })).rejects.toBeInstanceOf(DnsSocketError);
  });
});

describe('TCP listener', () => {
  it('answers pipelined queries sent in one write and a query split across writes', async () => {
    const { resolver } = resolverOn();
    const server = await startTcpDnsServer({ address: HOST, port: 19010, handler: resolver, clock: new ManualClock() });
    cleanups.push(() => server.close());
    const client = await tcpClient(server.port);
    client.write(Buffer.concat([frameMessage(query('web', 'A', { id: 1 })), frameMessage(query('tasks.db', 'A', { id: 2 })), frameMessage(query('nosuch', 'A', { id: 3 }))]));
    const answers = (await client.read(3)).map(decode).sort((a, b) => (a.id ?? 0) - (b.id ?? 0));
    expect(answers.map((a) => a.rcode)).toEqual(['NOERROR', 'NOERROR', 'NXDOMAIN']);
    expect(answersOf(answers[1]!)).toEqual(['127.64.1.20', '127.64.1.21']);
    const framed = frameMessage(query('web', 'A', { id: 4 }));
    client.write(framed.subarray(0, 1));
    client.write(framed.subarray(1, 9));
    client.write(framed.subarray(9));
    expect(decode((await client.read(1))[0]!).id).toBe(4);
    expect(server.counters.get('dns_tcp_rx_messages')).toBe(4);
  });

  it('answers a large record set in full over TCP', async () => {
    const records = swarmRecords();
    for (let i = 0; i < 200; i++) records.setTask({ service: 'db', slot: String(10 + i), taskId: `t${String(i).padStart(24, '0')}`, address: `100.64.9.${i}`, healthy: true });
    const { resolver } = resolverOn(records);
    const server = await startTcpDnsServer({ address: HOST, port: 19011, handler: resolver, clock: new ManualClock() });
    cleanups.push(() => server.close());
    const client = await tcpClient(server.port);
    client.write(frameMessage(query('db')));
    const r = decode((await client.read(1))[0]!);
    expect(r.flag_tc).toBe(false);
    expect(r.answers).toHaveLength(202);
  });

  it('reads no further than maxInFlight unanswered queries, then resumes as answers go out, in any order', async () => {
    const { resolver } = resolverOn();
    const held: { bytes: Uint8Array; answer(): void }[] = [];
    // Every query is "forwarded": its answer waits until the test releases it.
    const handler: DnsHandler = {
      handle(bytes, client) {
        const outcome = resolver.handle(bytes, client);
        if (outcome.kind !== 'response') return outcome;
        let answer!: () => void;
        const response = new Promise<Uint8Array>((resolve) => (answer = () => resolve(outcome.bytes)));
        held.push({ bytes, answer });
        return { kind: 'forwarded', response };
      },
    };
    const server = await startTcpDnsServer({ address: HOST, port: 19014, handler, clock: new ManualClock(), maxInFlight: 2 });
    cleanups.push(() => server.close());
    const client = await tcpClient(server.port);
    client.write(Buffer.concat([1, 2, 3, 4].map((id) => frameMessage(query('web', 'A', { id })))));
    await until(() => held.length >= 2);
    await until(() => true);
    expect(held).toHaveLength(2);
    held[1]!.answer();
    expect(decode((await client.read(1))[0]!).id).toBe(2);
    await until(() => held.length >= 3);
    expect(held.map((h) => decode(h.bytes).id)).toEqual([1, 2, 3]);
    held[0]!.answer();
    held[2]!.answer();
    expect((await client.read(2)).map((m) => decode(m).id).sort()).toEqual([1, 3]);
    await until(() => held.length >= 4);
    held[3]!.answer();
    expect(decode((await client.read(1))[0]!).id).toBe(4);
  });

  it('closes a connection idle for the idle timeout, not before', async () => {
    const { resolver } = resolverOn();
    const clock = new ManualClock();
    const server = await startTcpDnsServer({ address: HOST, port: 19012, handler: resolver, clock, idleTimeoutMs: 5000 });
    cleanups.push(() => server.close());
    const client = await tcpClient(server.port);
    client.write(frameMessage(query('web')));
    await client.read(1);
    clock.advance(4999);
    client.write(frameMessage(query('web')));
    await client.read(1);
    clock.advance(4999);
    expect(server.counters.get('dns_tcp_idle_timeouts')).toBe(0);
    clock.advance(1);
    await client.closed;
    expect(server.counters.get('dns_tcp_idle_timeouts')).toBe(1);
  });

  it('closes a connection that trickles a partial message at the idle timeout (slowloris)', async () => {
    const { resolver } = resolverOn();
    const clock = new ManualClock();
    const server = await startTcpDnsServer({ address: HOST, port: 19015, handler: resolver, clock, idleTimeoutMs: 5000 });
    cleanups.push(() => server.close());
    const client = await tcpClient(server.port);
    const framed = frameMessage(query('web'));
    await until(() => server.counters.get('dns_tcp_connections') === 1);
    // A byte every 1.2 s: with the timer restarted by every byte this would never close.
    for (let i = 0; i < 5; i++) {
      client.write(framed.subarray(i, i + 1));
      for (let turn = 0; turn < 3; turn++) await until(() => true);
      clock.advance(1200);
    }
    // The timeout fires inside advance(); the close reaches the client a moment later.
    expect(server.counters.get('dns_tcp_idle_timeouts')).toBe(1);
    expect(server.counters.get('dns_tcp_rx_messages')).toBe(0);
    await client.closed;
  });

  it('closes connections beyond the bound at once and counts them', async () => {
    const { resolver } = resolverOn();
    const server = await startTcpDnsServer({ address: HOST, port: 19013, handler: resolver, clock: new ManualClock(), maxConnections: 2 });
    cleanups.push(() => server.close());
    const a = await tcpClient(server.port);
    const b = await tcpClient(server.port);
    a.write(frameMessage(query('web')));
    b.write(frameMessage(query('web')));
    await a.read(1);
    await b.read(1);
    const c = await tcpClient(server.port);
    await c.closed;
    expect(server.counters.get('dns_tcp_connections_rejected')).toBe(1);
    expect(server.connections).toBe(2);
  });
});

describe('forwarding over real sockets', () => {
  /**
   * A stand-in for the host's resolver on 127.0.0.1:19020: over UDP it answers small.example
   * with one address and big.example with TC set; over TCP it gives big.example's 60 addresses.
   */
  async function fakeUpstream() {
    const big = (q: Uint8Array) => upstreamAnswer(q, Array.from({ length: 60 }, (_, i) => ({ type: 'A' as const, name: 'big.example', ttl: 60, data: `198.51.100.${i}` })));
    const udp = dgram.createSocket('udp4');
    udp.on('message', (msg, rinfo) => {
      const name = decode(msg).questions?.[0]?.name;
      const reply = name === 'big.example' ? upstreamAnswer(msg, [], { flags: 0x8180 | 0x0200 }) : upstreamAnswer(msg, [{ type: 'A', name: name ?? '', ttl: 60, data: '192.0.2.1' }]);
      udp.send(reply, rinfo.port, rinfo.address);
    });
    await new Promise<void>((resolve) => udp.bind(19020, HOST, resolve));
    const tcp = net.createServer((socket) => {
      const reader = new LengthPrefixedReader();
      socket.on('data', (chunk) => {
        for (const msg of reader.push(chunk)) socket.write(frameMessage(big(msg)));
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => tcp.listen(19020, HOST, resolve));
    cleanups.push(async () => {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    });
  }

  it('forwards other names, falls back to TCP upstream on TC, and truncates for a UDP client', async () => {
    await fakeUpstream();
    const transport = await openUpstreamTransport({ bindAddress: HOST });
    const forwarder = new Forwarder({ servers: [{ address: HOST, port: 19020 }], transport, clock: new RealClock(), rng: new SeededRng(2) });
    cleanups.push(() => forwarder.close());
    const resolver = new DnsResolver({ records: swarmRecords(), rng: new SeededRng(1), forwarder });
    const udpServer = await startUdpDnsServer({ address: HOST, port: 19021, handler: resolver });
    const tcpServer = await startTcpDnsServer({ address: HOST, port: 19021, handler: resolver, clock: new RealClock() });
    cleanups.push(() => udpServer.close(), () => tcpServer.close());

    const client = await udpClient();
    client.send(query('small.example', 'A', { id: 11 }), udpServer.port);
    const small = decode(await client.next());
    expect(small.id).toBe(11);
    expect(answersOf(small)).toEqual(['192.0.2.1']);

    client.send(query('big.example', 'A', { id: 12 }), udpServer.port);
    const truncated = decode(await client.next());
    expect(truncated.id).toBe(12);
    expect(truncated.flag_tc).toBe(true);
    expect(forwarder.counters.get('dns_forward_tcp_sent')).toBe(1);

    const tcp = await tcpClient(tcpServer.port);
    tcp.write(frameMessage(query('big.example', 'A', { id: 13 })));
    const full = decode((await tcp.read(1))[0]!);
    expect(full.id).toBe(13);
    expect(full.answers).toHaveLength(60);
  });

  it('answers SERVFAIL when the upstream truncates over UDP and refuses TCP', async () => {
    // An upstream on 127.0.0.1:19022 that answers every UDP query with TC and has no TCP listener.
    const udp = dgram.createSocket('udp4');
    udp.on('message', (msg, rinfo) => udp.send(upstreamAnswer(msg, [], { flags: 0x8180 | 0x0200 }), rinfo.port, rinfo.address));
    await new Promise<void>((resolve) => udp.bind(19022, HOST, resolve));
    cleanups.push(() => new Promise<void>((resolve) => udp.close(() => resolve())));
    const transport = await openUpstreamTransport({ bindAddress: HOST });
    const forwarder = new Forwarder({ servers: [{ address: HOST, port: 19022 }], transport, clock: new RealClock(), rng: new SeededRng(2), attempts: 1 });
    cleanups.push(() => forwarder.close());
    const resolver = new DnsResolver({ records: swarmRecords(), rng: new SeededRng(1), forwarder });
    const server = await startUdpDnsServer({ address: HOST, port: 19023, handler: resolver });
    cleanups.push(() => server.close());
    const client = await udpClient();
    client.send(query('big.example', 'A', { id: 21 }), server.port);
    const r = decode(await client.next());
    expect(r.id).toBe(21);
    expect(r.rcode).toBe('SERVFAIL');
    expect(forwarder.counters.get('dns_forward_tcp_errors')).toBe(1);
  });
});

describe('startEmbeddedDns', () => {
  it('listens on the first address that binds, forwards to resolv.conf servers, and reports every counter', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-dns-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const resolvConf = path.join(dir, 'resolv.conf');
    await writeFile(resolvConf, 'nameserver 127.0.0.11\nnameserver 127.0.0.1\nsearch corp.example\n');
    const taken = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => taken.bind(19030, HOST, resolve));
    cleanups.push(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    const dns = await startEmbeddedDns({
      records: swarmRecords(),
      clock: new RealClock(),
      rng: new SeededRng(1),
      listen: [{ address: HOST, port: 19030 }, { address: HOST, port: 19031 }],
      resolvConfPath: resolvConf,
      stripSearchDomains: true,
    });
    cleanups.push(() => dns.close());
    expect(dns.port).toBe(19031);
    // 127.0.0.11 is never an upstream; 127.0.0.1:53 is not our address, so it stays.
    expect(dns.forwarder.servers).toEqual([{ address: '127.0.0.1', port: 53 }]);
    const client = await udpClient();
    client.send(query('web.corp.example'), dns.port);
    expect(answersOf(decode(await client.next()))).toEqual(['127.64.1.2']);
    expect(dns.counters()).toMatchObject({ dns_queries_udp: 1, dns_udp_rx: 1, dns_tcp_connections: 0, dns_forward_queries: 0 });
  });

  it('caches answers when the records have version(): hits carry each asker’s ID, a change shows on the next query', async () => {
    const records = swarmRecords();
    const dns = await startEmbeddedDns({ records, clock: new ManualClock(), rng: new SeededRng(1), listen: [{ address: HOST, port: 19033 }], upstreams: [] });
    cleanups.push(() => dns.close());
    const client = await udpClient();
    client.send(query('tasks.web', 'A', { id: 1 }), dns.port);
    const first = decode(await client.next());
    client.send(query('tasks.web', 'A', { id: 2 }), dns.port);
    const second = decode(await client.next());
    expect([first.id, second.id]).toEqual([1, 2]);
    expect(answersOf(second)).toEqual(answersOf(first));
    records.setHealthy(WEB1, false);
    client.send(query('tasks.web', 'A', { id: 3 }), dns.port);
    expect(answersOf(decode(await client.next()))).toEqual(['127.64.1.11']);
    expect(dns.counters()).toMatchObject({ dns_answer_cache_hits: 1, dns_answer_cache_misses: 2 });
  });

  it('keeps no cache over records without version() unless asked', async () => {
    const records = swarmRecords();
    const plain = { service: records.service.bind(records), tasks: records.tasks.bind(records), byAddress: records.byAddress.bind(records) };
    const dns = await startEmbeddedDns({ records: plain, clock: new ManualClock(), rng: new SeededRng(1), listen: [{ address: HOST, port: 19034 }], upstreams: [] });
    cleanups.push(() => dns.close());
    const client = await udpClient();
    for (let id = 1; id <= 2; id++) {
      client.send(query('web', 'A', { id }), dns.port);
      expect(decode(await client.next()).id).toBe(id);
    }
    expect(dns.counters()).toMatchObject({ dns_answer_cache_hits: 0, dns_answer_cache_misses: 0 });
  });

  it('fails with DnsSocketError when no address binds', async () => {
    const taken = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => taken.bind(19032, HOST, resolve));
    cleanups.push(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    await expect(
      startEmbeddedDns({ records: swarmRecords(), clock: new RealClock(), rng: new SeededRng(1), listen: [{ address: HOST, port: 19032 }], upstreams: [] }),
    ).rejects.toBeInstanceOf(DnsSocketError);
  });
});
