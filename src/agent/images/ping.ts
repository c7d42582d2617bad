/**
 * `shoal/ping`: `ping HOST` as the seed's `alpine ping` (BusyBox) prints it, for
 * `docker service create --mode global --name g shoal/ping 127.0.0.1` and its logs.
 *
 * ICMP needs a raw socket (root or CAP_NET_RAW), which a task has no business holding, so each
 * probe is a TCP connect to HOST's port 7 (echo) instead: an accepted connect *or a refusal*
 * (the host's RST) is a reply, and its round trip is the time shown; no answer within the
 * timeout is a lost probe and prints nothing, as BusyBox prints nothing for a lost echo. The
 * lines keep BusyBox's shape with the transport named:
 *
 * ```
 * PING 127.0.0.1 (127.0.0.1): TCP port 7
 * tcp from 127.0.0.1:7: seq=0 time=0.215 ms
 * tcp from 127.0.0.1:7: seq=1 time=0.143 ms
 * --- 127.0.0.1 ping statistics ---
 * 2 packets transmitted, 2 packets received, 0% packet loss
 * round-trip min/avg/max = 0.143/0.179/0.215 ms
 * ```
 *
 * Options: `-c COUNT` (stop after COUNT probes), `-i SECONDS` (interval, default 1), `-W
 * SECONDS` (per-probe timeout, default 5), `-p PORT` (default 7). SIGINT or SIGTERM prints the
 * statistics and exits: 0 when any probe was answered, 1 otherwise (also after COUNT).
 * Started by an agent (`SHOAL_PARENT_PID`), it exits when the agent is gone.
 */
import { lookup } from 'node:dns/promises';
import { connect } from 'node:net';
import { pathToFileURL } from 'node:url';

export interface PingOptions {
  readonly host: string;
  readonly count?: number;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly port: number;
}

export const USAGE = 'usage: ping [-c COUNT] [-i SECONDS] [-W SECONDS] [-p PORT] HOST';

/** Parses ping's arguments; returns a message (for stderr) when they are wrong. */
export function parsePingArgs(args: readonly string[]): PingOptions | string {
  let host: string | undefined;
  let count: number | undefined;
  let intervalMs = 1000;
  let timeoutMs = 5000;
  let port = 7;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-c' || a === '-i' || a === '-W' || a === '-p') {
      const v = Number(args[++i]);
      if (a === '-c') {
        if (!Number.isInteger(v) || v < 1) return `ping: invalid count ${JSON.stringify(args[i])}`;
        count = v;
      } else if (a === '-p') {
        if (!Number.isInteger(v) || v < 1 || v > 65535) return `ping: invalid port ${JSON.stringify(args[i])}`;
        port = v;
      } else {
        if (!Number.isFinite(v) || v < 0.01 || v > 3600) return `ping: invalid ${a === '-i' ? 'interval' : 'timeout'} ${JSON.stringify(args[i])}`;
        if (a === '-i') intervalMs = v * 1000;
        else timeoutMs = v * 1000;
      }
    } else if (a.startsWith('-')) {
      return `ping: unknown option ${a}\n${USAGE}`;
    } else if (host === undefined) {
      host = a;
    } else {
      return `ping: one host only\n${USAGE}`;
    }
  }
  if (host === undefined) return USAGE;
  return { host, intervalMs, timeoutMs, port, ...(count !== undefined && { count }) };
}

export function formatReply(address: string, port: number, seq: number, ms: number): string {
  return `tcp from ${address}:${port}: seq=${seq} time=${ms.toFixed(3)} ms`;
}

/** BusyBox's closing lines. */
export function formatStats(host: string, sent: number, times: readonly number[]): string {
  const loss = sent === 0 ? 0 : Math.round(((sent - times.length) / sent) * 100);
  const lines = [`--- ${host} ping statistics ---`, `${sent} packets transmitted, ${times.length} packets received, ${loss}% packet loss`];
  if (times.length > 0) {
    const min = Math.min(...times);
    const max = Math.max(...times);
    const avg = times.reduce((a, b) => a + b, 0) / times.length;
    lines.push(`round-trip min/avg/max = ${min.toFixed(3)}/${avg.toFixed(3)}/${max.toFixed(3)} ms`);
  }
  return lines.join('\n');
}

/** One probe: the round trip in ms when the host answered (accepted or refused), undefined when it did not in time. Rejects with other errors. */
export function probe(address: string, port: number, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({ host: address, port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(undefined);
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      const ms = performance.now() - started;
      socket.destroy();
      resolve(ms);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (error.code === 'ECONNREFUSED') resolve(performance.now() - started);
      else reject(error);
    });
  });
}

async function main(): Promise<void> {
  const o = parsePingArgs(process.argv.slice(2));
  if (typeof o === 'string') {
    process.stderr.write(`${o}\n`);
    process.exit(2);
  }
  let address: string;
  try {
    address = (await lookup(o.host, { family: 4 })).address;
  } catch {
    process.stderr.write(`ping: bad address '${o.host}'\n`);
    process.exit(1);
  }
  process.stdout.write(`PING ${o.host} (${address}): TCP port ${o.port}\n`);
  const times: number[] = [];
  let sent = 0;
  let outstanding = 0;
  let done = false;
  const finish = (): void => {
    if (done) return;
    done = true;
    clearInterval(ticker);
    process.stdout.write(`${formatStats(o.host, sent, times)}\n`, () => process.exit(times.length > 0 ? 0 : 1));
  };
  const tick = (): void => {
    if (done) return;
    if (o.count !== undefined && sent >= o.count) {
      if (outstanding === 0) finish();
      return;
    }
    const seq = sent++;
    outstanding++;
    probe(address, o.port, o.timeoutMs).then(
      (ms) => {
        outstanding--;
        if (done) return;
        if (ms !== undefined) {
          times.push(ms);
          process.stdout.write(`${formatReply(address, o.port, seq, ms)}\n`);
        }
        if (o.count !== undefined && sent >= o.count && outstanding === 0) finish();
      },
      (error: unknown) => {
        outstanding--;
        if (done) return;
        process.stderr.write(`ping: seq=${seq}: ${error instanceof Error ? error.message : String(error)}\n`);
        if (o.count !== undefined && sent >= o.count && outstanding === 0) finish();
      },
    );
  };
  const ticker = setInterval(tick, o.intervalMs);
  tick();
  process.once('SIGINT', finish);
  process.once('SIGTERM', finish);
  // Started by an agent: when it is gone (SIGKILL leaves no chance to stop us), so are we.
  const parent = Number(process.env['SHOAL_PARENT_PID'] ?? NaN);
  if (Number.isInteger(parent)) {
    setInterval(() => {
      if (process.ppid !== parent) finish();
    }, 1000).unref();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`ping: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
