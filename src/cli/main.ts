#!/usr/bin/env node
/**
 * The `shoal` command. `shoal agent` runs the agent of this host in this process; every other
 * verb is a client of an agent's API on its unix socket.
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { Command, InvalidArgumentError as CommanderArgumentError } from 'commander';
import { Agent } from '../agent/agent.js';
import { DEFAULT_DATA_PATH_PORT, DEFAULT_GOSSIP_PORT, type RawSettings, parseConfigFile, resolveSettings, settingsFromEnv } from '../agent/config.js';
import { parseUdpEndpoint } from '../agent/overlay-node.js';
import { startApiServer } from '../api/server.js';
import { createLogger } from '../lib/logger.js';
import { apiRequest, defaultApiSocket, defaultDataDir } from './api-client.js';
import { registerNodeCommands } from './commands/node.js';
import { registerServiceCommands } from './commands/service.js';
import { registerSwarmCommands } from './commands/swarm.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function wrap<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (error) {
      throw new CommanderArgumentError(error instanceof Error ? error.message : String(error));
    }
  };
}

const program = new Command('shoal').description('Docker Swarm mode with a userspace data plane').showHelpAfterError();

program
  .command('agent')
  .description('run the agent of this host (every flag also reads SHOAL_<FLAG> from the environment, or a key of --config)')
  .option('--config <file>', 'YAML file of settings, keys spelled as the flags (advertise-addr: 127.0.0.2)')
  .option('--node-name <name>', 'name of this node (default: the host name)')
  .option('--advertise-addr <ip>', 'underlay address other hosts reach this one at (required)')
  .option('--listen-addr <ip>', 'underlay address to bind (default: the advertise address)')
  .option('--join <addr[:port],...>', 'gossip seeds to join (repeatable or comma-separated)', collect, [])
  .option('--data-path-port <port>', `UDP port of the VXLAN data path (default ${DEFAULT_DATA_PATH_PORT})`)
  .option('--gossip-port <port>', `UDP and TCP port of the gossip (default ${DEFAULT_GOSSIP_PORT})`)
  .option('--catalog <file>', 'services and tasks (compose-like YAML, compose/*.yaml) until the control plane schedules them')
  .option('--overlay-addr <cidr>', "this host's address on the overlay (default: derived from the advertise address)")
  .option('--peer <overlay@underlay[:port]>', 'a static host on the overlay (repeatable)', collect, [])
  .option('--fdb <mac@underlay[:port]>', 'a forwarding entry for a non-shoal VTEP (repeatable)', collect, [])
  .option('--flood <underlay[:port]>', 'a VTEP that receives broadcast frames (repeatable)', collect, [])
  .option('--api-socket <path>', 'unix socket of the API (default: $SHOAL_RUN_DIR or $TMPDIR/shoal/<advertise-addr>.sock)')
  .option('--api-tcp <host:port>', 'also serve the API on this loopback TCP address, for docker -H tcp://…')
  .option('--data-dir <path>', "this node's swarm identity and the manager's store (default: $SHOAL_RUN_DIR or $TMPDIR/shoal/<advertise-addr>/)")
  .option('--dns-addr <host:port>', 'embedded DNS for host processes when 127.0.0.11:53 cannot be bound (default <listen-addr>:8053)')
  .option('--mirrors <on|off>', 'serve 127.X.Y.Z mirrors of overlay addresses (default on; one agent per host)')
  .action(async (opts: Record<string, unknown>) => {
    const logger = createLogger('shoal-agent');
    const file = typeof opts['config'] === 'string' ? parseConfigFile(await readFile(opts['config'], 'utf8'), opts['config']) : {};
    const flags: RawSettings = {};
    for (const [key, value] of Object.entries(opts)) {
      if (key === 'config' || value === undefined || (Array.isArray(value) && value.length === 0)) continue;
      (flags as Record<string, unknown>)[key] = value;
    }
    const settings = resolveSettings({ flags, env: settingsFromEnv(process.env), file }, { nodeName: os.hostname() });
    const agent = await Agent.start({ settings, dataDir: settings.dataDir ?? defaultDataDir(settings.advertiseAddr) }, logger);
    const socketPath = settings.apiSocket ?? defaultApiSocket(settings.advertiseAddr);
    const tcp = settings.apiTcp === undefined ? undefined : parseUdpEndpoint(settings.apiTcp, 2375);
    const api = await startApiServer(agent, socketPath, { logger, ...(tcp ? { tcp: { host: tcp.address, port: tcp.port } } : {}) });
    logger.info({ socket: socketPath, tcp: api.tcpPort, vtep: agent.vtepAddress() }, 'api listening');
    // One line on stdout when ready, for scripts and tests that start agents.
    process.stdout.write(`${JSON.stringify({ ready: true, node: agent.nodeName, api: socketPath, apiTcpPort: api.tcpPort, vtep: agent.vtepAddress() })}\n`);
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'stopping: leaving the gossip');
      void Promise.all([api.close(), agent.close()]).finally(() => process.exit(0));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });

program
  .command('ping')
  .description("ping an overlay address from an agent's interface, like ping(8)")
  .argument('<address>', 'overlay IPv4 address')
  .option('-c, --count <n>', 'echo requests to send', wrap(Number), 5)
  .option('-i, --interval <seconds>', 'seconds between requests', wrap(Number), 1)
  .option('-W, --timeout <seconds>', 'seconds to wait for each reply', wrap(Number), 1)
  .requiredOption('--api-socket <path>', 'unix socket of the agent to ping from')
  .action(async (address: string, opts: { count: number; interval: number; timeout: number; apiSocket: string }) => {
    const body = { address, count: opts.count, intervalMs: opts.interval * 1000, timeoutMs: opts.timeout * 1000 };
    const { status, json } = await apiRequest(opts.apiSocket, 'POST', '/shoal/overlay/ping', body);
    if (status !== 200) {
      process.stderr.write(`Error response from agent: ${String((json as { message?: unknown }).message)}\n`);
      process.exitCode = 1;
      return;
    }
    const replies = (json as { replies: ({ seqNo: number; ttl: number; bytes: number; rttMs: number } | { seqNo: number; error: string })[] }).replies;
    process.stdout.write(`PING ${address} from ${opts.apiSocket}\n`);
    for (const r of replies) {
      process.stdout.write('error' in r ? `seq=${r.seqNo} ${r.error}\n` : `${r.bytes + 8} bytes from ${address}: icmp_seq=${r.seqNo} ttl=${r.ttl} time=${r.rttMs.toFixed(3)} ms\n`);
    }
    const received = replies.filter((r) => !('error' in r)).length;
    process.stdout.write(`--- ${address} ping statistics ---\n${replies.length} packets transmitted, ${received} received, ${Math.round((100 * (replies.length - received)) / replies.length)}% packet loss\n`);
    if (received === 0) process.exitCode = 1;
  });

program
  .command('metrics')
  .description("print an agent's counters (Prometheus text format)")
  .requiredOption('--api-socket <path>', 'unix socket of the agent')
  .action(async (opts: { apiSocket: string }) => {
    const { status, text } = await apiRequest(opts.apiSocket, 'GET', '/metrics');
    process.stdout.write(text);
    if (status !== 200) process.exitCode = 1;
  });

registerSwarmCommands(program);
registerNodeCommands(program);
registerServiceCommands(program);

program.parseAsync().catch((error: unknown) => {
  process.stderr.write(`shoal: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
