/**
 * One side of native-bench/tcp-bench.ts, in its own process:
 *   sink   <underlay> <peerUnderlay> <overlay> <mtu> <peerOverlay>  listens on overlay port 5001, reads everything
 *   source <underlay> <peerUnderlay> <overlay> <mtu> <peerOverlay> <seconds>  connects and writes for <seconds>
 *   udp-recv <address> <port>                                  counts raw UDP datagrams (Node's ceiling)
 *   udp-send <address> <port> <peer> <peerPort> <size> <seconds> sends datagrams of <size> as fast as Node allows
 * Prints {"ready":true} when listening, and one JSON result line at the end.
 */
import dgram from 'node:dgram';
import { RealClock } from '../src/lib/clock.js';
import { CryptoRng } from '../src/lib/rng.js';
import { macForIpv4, parseIpv4Address } from '../src/wire/address.js';
import { OverlayInterface } from '../src/netstack/interface.js';
import { attachTcp } from '../src/netstack/tcp/attach.js';
import { ForwardingTable } from '../src/overlay/forwarding-table.js';
import { openUdpSocket } from '../src/overlay/node-udp.js';
import { Vtep } from '../src/overlay/vtep.js';

const VNI = 4096;
const VTEP_PORT = 24789;
const out = (v: unknown): void => {
  process.stdout.write(`${JSON.stringify(v)}\n`);
};
const ip = (text: string): number => {
  const r = parseIpv4Address(text);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};
/** Prints the result and exits once stdout has taken it (a pipe's write is asynchronous). */
const finish = (v: unknown, code = 0): void => {
  process.stdout.write(`${JSON.stringify(v)}\n`, () => process.exit(code));
};
const cpuSeconds = (start: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(start);
  return (u.user + u.system) / 1e6;
};

async function overlay(underlay: string, peerUnderlay: string, overlayAddr: string, mtu: number, peerOverlay: string) {
  const clock = new RealClock();
  const socket = await openUdpSocket({ address: underlay, port: VTEP_PORT, recvBufferSize: 32 << 20, sendBufferSize: 32 << 20 });
  const vtep = new Vtep({ socket, fdb: new ForwardingTable() });
  const peer = { address: peerUnderlay, port: VTEP_PORT };
  vtep.fdb.set(VNI, macForIpv4(ip(peerOverlay)), peer);
  vtep.fdb.addFlood(VNI, peer);
  const iface = vtep.attachWith(VNI, (link) => new OverlayInterface({ address: ip(overlayAddr), prefixLen: 24, link, clock, mtu }));
  const tcp = attachTcp(iface, { clock, rng: new CryptoRng(), config: { sendBufferSize: 4 << 20, receiveBufferSize: 4 << 20 } });
  return { vtep, iface, tcp };
}

async function main(): Promise<void> {
  const [mode, ...a] = process.argv.slice(2);
  switch (mode) {
    case 'sink': {
      const [underlay, peerUnderlay, overlayAddr, mtu, peerOverlay] = a as [string, string, string, string, string];
      const { tcp, vtep, iface } = await overlay(underlay, peerUnderlay, overlayAddr, Number(mtu), peerOverlay);
      tcp.sockets.listen(5001, (s) => {
        let bytes = 0;
        let started = 0n;
        let cpu: NodeJS.CpuUsage | undefined;
        s.on('data', (b: Buffer) => {
          if (bytes === 0) {
            started = process.hrtime.bigint();
            cpu = process.cpuUsage();
          }
          bytes += b.length;
        });
        s.on('end', () => {
          const seconds = Number(process.hrtime.bigint() - started) / 1e9;
          finish({ bytes, seconds, cpu: cpu ? cpuSeconds(cpu) : 0, vtep: vtep.counters.snapshot(), iface: iface.counters.snapshot(), tcp: tcp.stack.counters.snapshot() });
        });
      });
      out({ ready: true });
      break;
    }
    case 'source': {
      const [underlay, peerUnderlay, overlayAddr, mtu, peerOverlay, secs] = a as [string, string, string, string, string, string];
      const { tcp, vtep } = await overlay(underlay, peerUnderlay, overlayAddr, Number(mtu), peerOverlay);
      const s = tcp.sockets.connect({ address: peerOverlay, port: 5001 });
      const chunk = Buffer.alloc(256 * 1024, 0x5a);
      const until = Date.now() + Number(secs) * 1000;
      let cpu: NodeJS.CpuUsage | undefined;
      let written = 0;
      const write = (): void => {
        while (Date.now() < until) {
          written += chunk.length;
          if (!s.write(chunk)) {
            s.once('drain', write);
            return;
          }
        }
        s.end();
      };
      s.on('connect', () => {
        cpu = process.cpuUsage();
        write();
      });
      s.on('error', (e) => {
        finish({ error: String(e) }, 1);
      });
      // Done once everything written is acknowledged (the sink exits at our FIN, so no 'close').
      s.on('finish', () => {
        const check = (): void => {
          if (s.connection.writableLength > 0 && s.connection.state !== 'CLOSED') {
            setTimeout(check, 10);
            return;
          }
          finish({ written, cpu: cpu ? cpuSeconds(cpu) : 0, rto: s.connection.rto, srtt: s.connection.srtt, stats: s.connection.stats, vtep: vtep.counters.snapshot() });
        };
        check();
      });
      break;
    }
    case 'udp-recv': {
      const [address, port] = a as [string, string];
      const sock = dgram.createSocket('udp4');
      let bytes = 0;
      let datagrams = 0;
      let first = 0n;
      let last = 0n;
      let cpu: NodeJS.CpuUsage | undefined;
      sock.on('message', (msg) => {
        if (datagrams === 0) {
          first = process.hrtime.bigint();
          cpu = process.cpuUsage();
        }
        last = process.hrtime.bigint();
        datagrams++;
        bytes += msg.length;
        if (msg.length === 1) {
          finish({ datagrams, bytes, seconds: Number(last - first) / 1e9, cpu: cpu ? cpuSeconds(cpu) : 0 });
        }
      });
      sock.bind(Number(port), address, () => {
        sock.setRecvBufferSize(32 << 20);
        out({ ready: true });
      });
      break;
    }
    case 'udp-send': {
      const [address, port, peer, peerPort, size, secs] = a as [string, string, string, string, string, string];
      const sock = dgram.createSocket('udp4');
      sock.bind(Number(port), address, () => {
        sock.setSendBufferSize(32 << 20);
        const payload = Buffer.alloc(Number(size), 0x5a);
        const until = Date.now() + Number(secs) * 1000;
        let sent = 0;
        // Keep a bounded number of sends in flight, as a VTEP under load would.
        let inFlight = 0;
        const pump = (): void => {
          while (inFlight < 64 && Date.now() < until) {
            inFlight++;
            sent++;
            sock.send(payload, Number(peerPort), peer, () => {
              inFlight--;
              pump();
            });
          }
          if (Date.now() >= until && inFlight === 0) {
            sock.send(Buffer.alloc(1), Number(peerPort), peer, () => {
              finish({ sent });
            });
          }
        };
        pump();
      });
      break;
    }
    default:
      throw new Error(`Unknown mode ${String(mode)}`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${String(e)}\n`);
  process.exit(1);
});
