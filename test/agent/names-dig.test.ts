/**
 * One agent's NameService on real sockets: BIND's `dig` against its host-side DNS
 * (127.0.0.121:24410; 127.0.0.11:53 is not tried, to stay in this test's addresses), a
 * stand-in for the host's resolver on 127.0.0.121:24411, two HTTP tasks on 127.0.0.121:24401–2
 * behind a real EndpointTable and MeshRouter, and a host process fetching through the mirrors
 * (VIP 100.64.9.254 → 127.64.9.254, tasks 100.64.9.130–131 → 127.64.9.130–131, target 24450).
 */
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { type Server, createServer } from 'node:http';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { NameService } from '../../src/agent/names.js';
import type { ServiceRoute } from '../../src/cluster/service-types.js';
import { RealClock } from '../../src/lib/clock.js';
import { DnsSocketError } from '../../src/lib/errors.js';
import { SeededRng } from '../../src/lib/rng.js';
import type { EndpointRow } from '../../src/mesh/endpoint-codec.js';
import { EndpointTable } from '../../src/mesh/endpoint-table.js';
import { localTcpConnector } from '../../src/mesh/node-upstream.js';
import { MeshRouter } from '../../src/mesh/router.js';
import { describeInterop } from '../helpers/interop.js';
import { decode, upstreamAnswer } from '../dns/fixtures.js';
import { httpGet, waitFor } from '../mesh/mesh-helpers.js';

const run = promisify(execFile);
const HOST = '127.0.0.121';
const DNS_PORT = 24410;
const UPSTREAM_PORT = 24411;
const TARGET = 24450;
const IP = (text: string): number => text.split('.').reduce((a, o) => a * 256 + Number(o), 0);
const T1 = 'k5q3n9x2m7c4v8b1z6a0s3d5f';
const T2 = 'p0o9i8u7y6t5r4e3w2q1a2s3d';
const T3 = 'l1k2j3h4g5f6d7s8a9z0x1c2v';
const WEB: ServiceRoute = { ID: 'svc1', Name: 'web', EndpointMode: 'vip', VirtualIP: '100.64.9.254', Ports: [{ Protocol: 'tcp', TargetPort: TARGET, PublishedPort: 24451, PublishMode: 'ingress' }] };

interface Dig {
  readonly status: string;
  readonly answers: readonly string[];
  readonly additional: readonly string[];
}

async function dig(...args: string[]): Promise<Dig> {
  const { stdout } = await run('dig', [`@${HOST}`, '-p', String(DNS_PORT), '+tries=1', '+time=2', '+nocookie', ...args]);
  const section = (title: string): string[] =>
    (new RegExp(`;; ${title} SECTION:\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(stdout)?.[1] ?? '')
      .split('\n')
      .filter((l) => l && !l.startsWith(';'))
      .map((l) => l.trim().split(/\s+/).join(' '));
  return { status: /status: (\w+)/.exec(stdout)?.[1] ?? '', answers: section('ANSWER'), additional: section('ADDITIONAL') };
}

const data = (d: Dig): string[] => d.answers.map((a) => a.split(' ').slice(4).join(' ')).sort();

function taskRow(taskId: string, slot: number, last: number, hostPort: number): EndpointRow {
  return {
    service: 'web',
    taskId,
    slot,
    node: 'n1',
    overlayAddress: IP(`100.64.9.${last}`),
    vni: 4096,
    vtepAddress: IP(HOST),
    vtepPort: 4789,
    hostAddress: IP(HOST),
    ports: [{ protocol: 'tcp', target: TARGET, hostPort }],
    health: 'none',
  };
}

/** A task: answers every request with its own ID. */
function startTask(taskId: string, port: number): Promise<Server> {
  const server = createServer((_req, res) => res.end(JSON.stringify({ task: taskId })));
  return new Promise((resolve) => server.listen(port, HOST, () => resolve(server)));
}

async function tasksSeen(host: string, requests: number): Promise<{ tasks: Set<string>; failed: number }> {
  const tasks = new Set<string>();
  let failed = 0;
  for (let i = 0; i < requests; i++) {
    try {
      tasks.add((JSON.parse((await httpGet(host, TARGET, '/')).body) as { task: string }).task);
    } catch {
      failed++;
    }
  }
  return { tasks, failed };
}

describeInterop(
  'agent: names — dig and mirrors against one agent’s NameService',
  ['dig'],
  () => {
    const clock = new RealClock();
    let table: EndpointTable;
    let router: MeshRouter;
    let names: NameService;
    let upstream: dgram.Socket;
    const tasks: Server[] = [];

    beforeAll(async () => {
      upstream = dgram.createSocket('udp4');
      upstream.on('message', (msg, rinfo) => {
        const name = decode(msg).questions?.[0]?.name ?? '';
        const reply = name === 'forwarded.example' ? upstreamAnswer(msg, [{ type: 'A', name, ttl: 300, data: '192.0.2.53' }]) : upstreamAnswer(msg, [], { rcode: 3 });
        upstream.send(reply, rinfo.port, rinfo.address);
      });
      await new Promise<void>((resolve) => upstream.bind(UPSTREAM_PORT, HOST, resolve));
      tasks.push(await startTask(T1, 24401), await startTask(T2, 24402), await startTask(T3, 24403));
      table = new EndpointTable({ nodeName: 'n1', clock });
      router = new MeshRouter({ table, clock, rng: new SeededRng(1), connectLocal: localTcpConnector(), connectTimeoutMs: 1000 });
      table.upsertLocal(taskRow(T1, 1, 130, 24401));
      table.upsertLocal(taskRow(T2, 2, 131, 24402));
      names = await NameService.start({
        table,
        router,
        dns: { address: HOST, port: DNS_PORT },
        tryEmbeddedAddress: false,
        mirrors: true,
        clock,
        rng: new SeededRng(2),
        upstreamResolvers: [{ address: HOST, port: UPSTREAM_PORT }],
      });
      names.setServices([WEB]);
      await names.mirrors!.settled();
    });

    afterAll(async () => {
      await names?.close();
      router?.close();
      table?.close();
      for (const t of tasks) await new Promise((r) => t.close(r));
      await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
    });

    it('listens for DNS on the configured fallback address when 127.0.0.11:53 is not used', () => {
      expect(names.hostDns).toEqual({ address: HOST, port: DNS_PORT });
    });

    it('a second agent whose DNS address is taken fails to start, unless it may fall back to any port, where it answers', async () => {
      const options = { table, router, dns: { address: HOST, port: DNS_PORT }, tryEmbeddedAddress: false, mirrors: false, clock, upstreamResolvers: [] };
      await expect(NameService.start(options)).rejects.toThrow(DnsSocketError);
      const second = await NameService.start({ ...options, dnsAnyPortLastResort: true });
      try {
        expect(second.hostDns.address).toBe(HOST);
        expect(second.hostDns.port).not.toBe(DNS_PORT);
        second.setServices([WEB]);
        const { stdout } = await run('dig', [`@${HOST}`, '-p', String(second.hostDns.port), '+short', '+tries=1', '+time=2', 'web']);
        expect(stdout.trim()).toBe('127.64.9.254');
      } finally {
        await second.close();
      }
    });

    it('answers A for the service with its VIP’s mirror, and tasks.<service> and task names with task mirrors', async () => {
      expect(data(await dig('web', 'A'))).toEqual(['127.64.9.254']);
      expect(data(await dig('tasks.web', 'A'))).toEqual(['127.64.9.130', '127.64.9.131']);
      expect(data(await dig(`web.2.${T2}`, 'A'))).toEqual(['127.64.9.131']);
    });

    it('answers PTR for the VIP and a task, and SRV with the tasks and their addresses', async () => {
      expect(data(await dig('-x', '127.64.9.254'))).toEqual(['web.']);
      expect(data(await dig('-x', '127.64.9.130'))).toEqual([`web.1.${T1}.`]);
      const srv = await dig(`_${TARGET}._tcp.web`, 'SRV');
      expect(data(srv)).toEqual([`0 1 ${TARGET} web.1.${T1}.`, `0 1 ${TARGET} web.2.${T2}.`]);
      expect(srv.additional.map((a) => a.split(' ').slice(4).join(' ')).sort()).toEqual(['127.64.9.130', '127.64.9.131']);
    });

    it('answers NXDOMAIN for a service that does not exist and forwards other names to the host’s resolver', async () => {
      expect((await dig('nosuch', 'A')).status).toBe('NXDOMAIN');
      expect((await dig(`web.9.${'a'.repeat(25)}`, 'A')).status).toBe('NXDOMAIN');
      const forwarded = await dig('forwarded.example', 'A');
      expect(forwarded.status).toBe('NOERROR');
      expect(data(forwarded)).toEqual(['192.0.2.53']);
    });

    it('a host process reaches both tasks through the VIP’s mirror, and one task only through its own mirror', async () => {
      const viaVip = await tasksSeen('127.64.9.254', 30);
      expect(viaVip.failed).toBe(0);
      expect([...viaVip.tasks].sort()).toEqual([T1, T2].sort());
      const viaTask = await tasksSeen('127.64.9.130', 10);
      expect(viaTask.failed).toBe(0);
      expect([...viaTask.tasks]).toEqual([T1]);
    });

    it('changes the answer within a second when a task turns unhealthy, and refuses its mirror; a new task joins the answer and gets a mirror', async () => {
      table.setHealth('web', T1, 'unhealthy');
      let answer: string[] = [];
      for (let i = 0; i < 10; i++) {
        answer = data(await dig('tasks.web', 'A'));
        if (answer.length === 1) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(answer).toEqual(['127.64.9.131']);
      await expect(httpGet('127.64.9.130', TARGET, '/')).rejects.toThrow();
      const viaVip = await tasksSeen('127.64.9.254', 10);
      expect([...viaVip.tasks]).toEqual([T2]);

      table.upsertLocal(taskRow(T3, 3, 132, 24403));
      for (let i = 0; i < 10; i++) {
        answer = data(await dig('tasks.web', 'A'));
        if (answer.length === 2) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(answer).toEqual(['127.64.9.131', '127.64.9.132']);
      await waitFor(() => names.mirrors!.listening().some((l) => l.address === '127.64.9.132'), 5000, 'the new task’s mirror');
      expect([...(await tasksSeen('127.64.9.132', 3)).tasks]).toEqual([T3]);

      table.deleteLocal('web', T3);
      table.setHealth('web', T1, 'none');
      await waitFor(() => !names.mirrors!.listening().some((l) => l.address === '127.64.9.132'), 5000, 'the deleted task’s mirror to close');
      await expect(httpGet('127.64.9.132', TARGET, '/')).rejects.toThrow();
      expect(data(await dig('tasks.web', 'A'))).toEqual(['127.64.9.130', '127.64.9.131']);
    });

    it('counts junk and oversized datagrams, answers what it can parse FORMERR, and keeps answering', async () => {
      const before = names.dns.resolver.counters.snapshot();
      const client = dgram.createSocket('udp4');
      const replies: Buffer[] = [];
      client.on('message', (m) => replies.push(m));
      await new Promise<void>((r) => client.bind(0, HOST, r));
      const send = (b: Uint8Array): Promise<void> => new Promise((r) => client.send(b, DNS_PORT, HOST, () => r()));
      await send(Buffer.from([1])); // too short to carry an ID: dropped, nobody to answer
      // A header claiming 5 questions followed by junk, 4000 bytes: FORMERR.
      const junk = Buffer.alloc(4000, 0xff);
      junk.writeUInt16BE(0x1234, 0);
      junk.writeUInt16BE(0x0100, 2);
      junk.writeUInt16BE(5, 4);
      await send(junk);
      await waitFor(() => replies.length >= 1, 5000, 'a FORMERR answer');
      client.close();
      const after = names.dns.resolver.counters.snapshot();
      expect(after.dns_dropped_short).toBe(before.dns_dropped_short + 1);
      expect(after.dns_responses_formerr).toBe(before.dns_responses_formerr + 1);
      expect(replies[0]!.readUInt16BE(0)).toBe(0x1234);
      expect(replies[0]![3]! & 0x0f).toBe(1); // FORMERR
      expect(data(await dig('web', 'A'))).toEqual(['127.64.9.254']);
      const metrics = names.metrics({ node: 'n1' });
      expect(metrics).toMatch(/dns_dropped_short\{node="n1"\} [1-9]/);
      expect(metrics).toMatch(/mirror_vip_cx_total\{node="n1"\} [1-9]/);
    });
  },
  { root: false },
);
