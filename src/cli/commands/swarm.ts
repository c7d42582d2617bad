/**
 * `shoal swarm init|join|join-token|leave|inspect`: docker's verbs, flags and messages, as a
 * client of the agent's Docker API (the same requests as the docker CLI, spec §6).
 */
import type { Command } from 'commander';
import { action, ApiCallError, call, inspectJson, socketOf, withSocket } from './swarm-api.js';

interface SwarmAnswer {
  Version: { Index: number };
  Spec: unknown;
  JoinTokens: { Worker: string; Manager: string };
}

interface NodeAnswer {
  ManagerStatus?: { Addr: string };
}

interface InfoAnswer {
  Swarm: { NodeID: string; ControlAvailable: boolean };
}

async function joinCommand(socket: string, role: 'worker' | 'manager', nodeId: string): Promise<string> {
  const swarm = (await call(socket, 'GET', '/swarm')) as SwarmAnswer;
  const node = (await call(socket, 'GET', `/nodes/${encodeURIComponent(nodeId)}`)) as NodeAnswer;
  const token = role === 'worker' ? swarm.JoinTokens.Worker : swarm.JoinTokens.Manager;
  if (!node.ManagerStatus) return '';
  return `To add a ${role} to this swarm, run the following command:\n\n    shoal swarm join --token ${token} ${node.ManagerStatus.Addr}\n\n`;
}

export function registerSwarmCommands(program: Command): void {
  const swarm = program.command('swarm').description('manage the swarm (as docker swarm)');

  withSocket(swarm.command('init').description('initialise a swarm: this node becomes its first manager'))
    .option('--advertise-addr <ip[:port]>', 'address other nodes reach this manager at')
    .option('--listen-addr <ip:port>', 'address the manager listens on', '0.0.0.0:2377')
    .option('--availability <active|pause|drain>', 'availability of this node', '')
    .option('--dispatcher-heartbeat <seconds>', 'heartbeat period of the nodes, in seconds', '0')
    .action(
      action(async (opts: { apiSocket?: string; advertiseAddr?: string; listenAddr: string; availability: string; dispatcherHeartbeat: string }) => {
        const socket = socketOf(opts);
        const heartbeat = Number(opts.dispatcherHeartbeat);
        if (!Number.isFinite(heartbeat) || heartbeat < 0) throw new ApiCallError(`invalid --dispatcher-heartbeat ${opts.dispatcherHeartbeat}`);
        const nodeId = (await call(socket, 'POST', '/swarm/init', {
          ListenAddr: opts.listenAddr,
          AdvertiseAddr: opts.advertiseAddr ?? '',
          Availability: opts.availability,
          Spec: { Dispatcher: heartbeat > 0 ? { HeartbeatPeriod: Math.round(heartbeat * 1e9) } : {} },
        })) as string;
        process.stdout.write(`Swarm initialized: current node (${nodeId}) is now a manager.\n\n`);
        process.stdout.write(await joinCommand(socket, 'worker', nodeId));
        process.stdout.write("To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions.\n\n");
      }),
    );

  withSocket(swarm.command('join').description('join a swarm as a node'))
    .argument('<host:port>', 'a manager of the swarm')
    .requiredOption('--token <token>', 'the join token (worker or manager)')
    .option('--advertise-addr <ip[:port]>', 'address other nodes reach this node at')
    .option('--listen-addr <ip:port>', 'address to listen on if this node becomes a manager', '0.0.0.0:2377')
    .option('--availability <active|pause|drain>', 'availability of this node', '')
    .action(
      action(async (remote: string, opts: { apiSocket?: string; token: string; advertiseAddr?: string; listenAddr: string; availability: string }) => {
        const socket = socketOf(opts);
        await call(socket, 'POST', '/swarm/join', {
          ListenAddr: opts.listenAddr,
          AdvertiseAddr: opts.advertiseAddr ?? '',
          RemoteAddrs: [remote],
          JoinToken: opts.token,
          Availability: opts.availability,
        });
        const info = (await call(socket, 'GET', '/info')) as InfoAnswer;
        process.stdout.write(`This node joined a swarm as a ${info.Swarm.ControlAvailable ? 'manager' : 'worker'}.\n`);
      }),
    );

  withSocket(swarm.command('join-token').description('show or rotate a join token'))
    .argument('<role>', 'worker or manager')
    .option('-q, --quiet', 'only print the token')
    .option('--rotate', 'replace the token with a new one')
    .action(
      action(async (role: string, opts: { apiSocket?: string; quiet?: boolean; rotate?: boolean }) => {
        if (role !== 'worker' && role !== 'manager') throw new ApiCallError('unknown role ' + role);
        const socket = socketOf(opts);
        if (opts.rotate) {
          const current = (await call(socket, 'GET', '/swarm')) as SwarmAnswer;
          const q = `rotateManagerToken=${role === 'manager'}&rotateManagerUnlockKey=false&rotateWorkerToken=${role === 'worker'}&version=${current.Version.Index}`;
          await call(socket, 'POST', `/swarm/update?${q}`, current.Spec);
          if (!opts.quiet) process.stdout.write(`Successfully rotated ${role} join token.\n\n`);
        }
        if (opts.quiet) {
          const s = (await call(socket, 'GET', '/swarm')) as SwarmAnswer;
          process.stdout.write(`${role === 'worker' ? s.JoinTokens.Worker : s.JoinTokens.Manager}\n`);
          return;
        }
        const info = (await call(socket, 'GET', '/info')) as InfoAnswer;
        process.stdout.write(await joinCommand(socket, role, info.Swarm.NodeID));
      }),
    );

  withSocket(swarm.command('leave').description('leave the swarm'))
    .option('-f, --force', 'leave even as the last manager (erases the swarm)')
    .action(
      action(async (opts: { apiSocket?: string; force?: boolean }) => {
        await call(socketOf(opts), 'POST', `/swarm/leave${opts.force ? '?force=1' : ''}`);
        process.stdout.write('Node left the swarm.\n');
      }),
    );

  withSocket(swarm.command('update').description("change the swarm's settings"))
    .option('--dispatcher-heartbeat <seconds>', 'heartbeat period of the nodes, in seconds')
    .option('--task-history-limit <n>', 'task history retention limit')
    .option('--cert-expiry <hours>', 'validity of node certificates, in hours')
    .action(
      action(async (opts: { apiSocket?: string; dispatcherHeartbeat?: string; taskHistoryLimit?: string; certExpiry?: string }) => {
        const socket = socketOf(opts);
        const current = (await call(socket, 'GET', '/swarm')) as SwarmAnswer & { Spec: Record<string, Record<string, unknown>> };
        const spec = structuredClone(current.Spec);
        const number = (text: string, what: string): number => {
          const n = Number(text);
          if (!Number.isFinite(n) || n <= 0) throw new ApiCallError(`invalid ${what} ${JSON.stringify(text)}`);
          return n;
        };
        if (opts.dispatcherHeartbeat !== undefined) spec['Dispatcher'] = { ...spec['Dispatcher'], HeartbeatPeriod: Math.round(number(opts.dispatcherHeartbeat, '--dispatcher-heartbeat') * 1e9) };
        if (opts.taskHistoryLimit !== undefined) spec['Orchestration'] = { ...spec['Orchestration'], TaskHistoryRetentionLimit: Math.round(number(opts.taskHistoryLimit, '--task-history-limit')) };
        if (opts.certExpiry !== undefined) spec['CAConfig'] = { ...spec['CAConfig'], NodeCertExpiry: Math.round(number(opts.certExpiry, '--cert-expiry') * 3600e9) };
        const q = `rotateManagerToken=false&rotateManagerUnlockKey=false&rotateWorkerToken=false&version=${current.Version.Index}`;
        await call(socket, 'POST', `/swarm/update?${q}`, spec);
        process.stdout.write('Swarm updated.\n');
      }),
    );

  withSocket(swarm.command('ca').description("print the swarm's root CA certificate")).action(
    action(async (opts: { apiSocket?: string }) => {
      const s = (await call(socketOf(opts), 'GET', '/swarm')) as { TLSInfo: { TrustRoot: string } };
      process.stdout.write(s.TLSInfo.TrustRoot);
    }),
  );

  withSocket(swarm.command('inspect').description('show the swarm object (JSON)')).action(
    action(async (opts: { apiSocket?: string }) => {
      process.stdout.write(inspectJson([await call(socketOf(opts), 'GET', '/swarm')]));
    }),
  );
}
