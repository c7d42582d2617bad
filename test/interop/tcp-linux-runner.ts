/**
 * shoal's overlay stack in one process, for test/interop/tcp-linux.test.ts: a VTEP on the
 * namespace's underlay address, an interface with 100.64.0.3/24, TCP on it, and one job:
 *
 *   serve <port> <bytes>     an http.Server over TcpSockets answering every request with a
 *                            deterministic body; prints {"ready":true,"sha256":...}
 *   fetch <addr> <port> <path>  an HTTP GET over TcpSockets; prints {"sha256","bytes"} or {"error"}
 *   read <addr> <port>       connects, writes a few bytes the peer never reads, reads until the
 *                            end; prints {"firstData":true} at the first byte, then {"end":n} or {"error"}
 *
 * The first argument is a JSON object: { underlay, kernelUnderlay, kernelMac, tcp? }.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { RealClock } from '../../src/lib/clock.js';
import { CryptoRng, SeededRng } from '../../src/lib/rng.js';
import { parseIpv4Address, parseMacAddress } from '../../src/wire/address.js';
import { OverlayInterface } from '../../src/netstack/interface.js';
import { attachTcp } from '../../src/netstack/tcp/attach.js';
import type { TcpConfig } from '../../src/netstack/tcp/config.js';
import { ForwardingTable } from '../../src/overlay/forwarding-table.js';
import { openUdpSocket } from '../../src/overlay/node-udp.js';
import { Vtep } from '../../src/overlay/vtep.js';

interface RunnerConfig {
  readonly underlay: string;
  readonly kernelUnderlay: string;
  readonly kernelMac: string;
  readonly tcp?: Partial<TcpConfig>;
}

const VNI = 4096;
const out = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value)}\n`);
};
const must = <T>(r: { ok: true; value: T } | { ok: false; error: string }): T => {
  if (!r.ok) throw new Error(r.error);
  return r.value;
};

async function main(): Promise<void> {
  const [configText, mode, ...args] = process.argv.slice(2);
  const config = JSON.parse(configText ?? '{}') as RunnerConfig;
  const clock = new RealClock();
  const socket = await openUdpSocket({ address: config.underlay, port: 4789, recvBufferSize: 16 << 20, sendBufferSize: 16 << 20 });
  const vtep = new Vtep({ socket, fdb: new ForwardingTable() });
  const kernel = { address: config.kernelUnderlay, port: 4789 };
  vtep.fdb.set(VNI, must(parseMacAddress(config.kernelMac)), kernel);
  vtep.fdb.addFlood(VNI, kernel);
  const iface = vtep.attachWith(VNI, (link) => new OverlayInterface({ address: must(parseIpv4Address('100.64.0.3')), prefixLen: 24, link, clock, mtu: 1450 }));
  const { sockets, stack } = attachTcp(iface, { clock, rng: new CryptoRng(), config: config.tcp ?? {} });
  const finish = (value: unknown): never => {
    out({ ...(value as object), counters: stack.counters.snapshot(), iface: iface.counters.snapshot() });
    process.exit(0);
  };

  switch (mode) {
    case 'serve': {
      const port = Number(args[0]);
      const body = new SeededRng(42).fill(new Uint8Array(Number(args[1])));
      const server = http.createServer((_req, res) => {
        res.setHeader('content-length', body.length);
        res.setHeader('content-type', 'application/octet-stream');
        res.end(body);
      });
      sockets.listen(port, (s) => server.emit('connection', s));
      out({ ready: true, sha256: createHash('sha256').update(body).digest('hex') });
      break;
    }
    case 'fetch': {
      const [address, port, path] = args;
      const hash = createHash('sha256');
      let bytes = 0;
      const req = http.request({ method: 'GET', host: address, port: Number(port), path, createConnection: () => sockets.connect({ address: address!, port: Number(port) }) as never }, (res) => {
        res.on('data', (b: Buffer) => {
          hash.update(b);
          bytes += b.length;
        });
        res.on('end', () => finish({ status: res.statusCode, bytes, sha256: hash.digest('hex') }));
        res.on('error', (e: Error & { code?: string }) => finish({ error: e.code ?? e.message }));
      });
      req.on('error', (e: Error & { code?: string }) => finish({ error: e.code ?? e.message }));
      req.end();
      break;
    }
    case 'read': {
      const [address, port] = args;
      const s = sockets.connect({ address: address!, port: Number(port) });
      let n = 0;
      s.write('bytes the server never reads\n');
      s.on('data', (b: Buffer) => {
        if (n === 0) out({ firstData: true });
        n += b.length;
      });
      s.on('end', () => finish({ end: n }));
      s.on('error', (e: Error & { code?: string }) => finish({ error: e.code ?? e.message, bytes: n }));
      break;
    }
    default:
      throw new Error(`Unknown mode ${String(mode)}`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`);
  process.exit(1);
});
