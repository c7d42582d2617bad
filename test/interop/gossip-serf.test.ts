/**
 * serf interop (issue 4): two stock `serf agent`s (Debian's serf 0.9.4, memberlist 0.2.2) and
 * three shoal gossip nodes, each shoal node in its own process (gossip-node-runner.ts), all on
 * 127.0.0.1 with ports only this file uses (26800-26959). Once plaintext and once with
 * `-encrypt` on both sides.
 *
 * The steps of a suite run in order and build on each other, as an operator would see them:
 * everyone sees everyone alive → a SIGKILLed shoal node shows as failed in serf → a SIGKILLed
 * serf agent is declared dead by shoal → a shoal node that leaves shows as left in serf. Every
 * wait is a bounded poll for what a user would observe (`serf members`, the node's member list),
 * never a timing assertion. Every process started here is killed by PID in afterAll.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describeInterop } from '../helpers/interop.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const RUNNER = fileURLToPath(new URL('./gossip-node-runner.ts', import.meta.url));
const STEP_TIMEOUT_MS = 120_000;

interface SerfMember {
  readonly name: string;
  readonly addr: string;
  readonly status: string;
  readonly tags: Record<string, string>;
}

/** A child process with its output kept for assertions and failure messages. */
class Proc {
  readonly lines: Record<string, unknown>[] = [];
  stderr = '';
  readonly #waiters = new Set<() => void>();

  constructor(
    readonly label: string,
    readonly child: ChildProcessWithoutNullStreams,
  ) {
    let partial = '';
    child.stdout.on('data', (chunk: Buffer) => {
      partial += chunk.toString();
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      for (const p of parts) {
        if (p.trim() === '') continue;
        try {
          this.lines.push(JSON.parse(p) as Record<string, unknown>);
        } catch {
          this.lines.push({ type: 'text', text: p });
        }
      }
      for (const w of this.#waiters) w();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-20_000);
    });
    child.on('exit', () => {
      for (const w of this.#waiters) w();
    });
  }

  /** The last lines of output, for failure messages. */
  tail(): string {
    return `${this.label} output: ${JSON.stringify(this.lines.slice(-15))} stderr: ${this.stderr.slice(-1500)}`;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first output line (from index `from`) matching `pred`; rejects after `ms`. */
  waitLine(pred: (l: Record<string, unknown>) => boolean, ms = 30_000, from = 0): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const hit = this.lines.slice(from).find(pred);
        if (!hit) return false;
        done();
        resolve(hit);
        return true;
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.label}: no matching line in ${ms} ms; output: ${JSON.stringify(this.lines.slice(-20))} stderr: ${this.stderr.slice(-2000)}`));
      }, ms);
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(waiter);
      };
      const waiter = (): void => void check();
      this.#waiters.add(waiter);
      check();
    });
  }

  /** Sends a runner command and resolves with its answer line. */
  async ask(command: 'members' | 'counters'): Promise<Record<string, unknown>> {
    const from = this.lines.length;
    this.child.stdin.write(`${command}\n`);
    return this.waitLine((l) => l['type'] === command, 10_000, from);
  }

  kill(): void {
    if (this.running && this.child.pid !== undefined) process.kill(this.child.pid, 'SIGKILL');
  }
}

function run(cmd: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 15_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function serfMembers(rpcPort: number): Promise<SerfMember[]> {
  const r = await run('serf', ['members', `-rpc-addr=127.0.0.1:${rpcPort}`, '-format=json']);
  if (r.code !== 0) return [];
  return (JSON.parse(r.stdout) as { members: SerfMember[] }).members;
}

/** Polls `probe` until `ok` holds, at most `ms`; fails with the last value seen. */
async function eventually<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, ms = 60_000): Promise<T> {
  const rounds = Math.ceil(ms / 250);
  let last: T | undefined;
  for (let i = 0; i < rounds; i++) {
    last = await probe();
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`Timed out waiting for ${what}; last seen: ${JSON.stringify(last)}`);
}

const statusOf = (members: readonly SerfMember[], name: string): string | undefined => members.find((m) => m.name === name)?.status;

interface ShoalMember {
  readonly name: string;
  readonly state: string;
}

async function shoalMembers(p: Proc): Promise<ShoalMember[]> {
  if (!p.running) return [];
  return (await p.ask('members'))['members'] as ShoalMember[];
}

const shoalStateOf = (members: readonly ShoalMember[], name: string): string | undefined => members.find((m) => m.name === name)?.state;

interface SuiteConfig {
  readonly label: string;
  readonly prefix: string;
  readonly encrypt: boolean;
}

const SUITES: readonly SuiteConfig[] = [
  { label: 'plaintext', prefix: 'p', encrypt: false },
  { label: 'encrypted (-encrypt)', prefix: 'e', encrypt: true },
];

/** The ports one suite uses (UDP and TCP alike), all inside one block of PORT_BLOCK_SIZE. */
interface SuitePorts {
  readonly serf: readonly [number, number];
  readonly rpc: readonly [number, number];
  readonly shoal: readonly [number, number, number];
  readonly wrongKey: number;
  /** A shoal node with no seeds that serf joins (serf opens the push/pull). */
  readonly joinedBySerf: number;
}

/**
 * This file's port range: 26800–26959, in blocks of 20. A suite takes the first block whose
 * ports are all free, so the file still runs when another copy of it is running (two engineers'
 * full test runs at once) instead of failing on "address already in use".
 */
const PORT_RANGE_START = 26800; // below Linux's ephemeral range (32768–60999): busy outbound sockets there made every block look taken
const PORT_BLOCK_SIZE = 20;
const PORT_BLOCKS = 8;

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
      const udp = createSocket('udp4');
      udp.once('error', () => {
        udp.close();
        server.close(() => resolve(false));
      });
      udp.bind({ address: '127.0.0.1', port, exclusive: true }, () => {
        udp.close();
        server.close(() => resolve(true));
      });
    });
  });
}

async function reservePorts(): Promise<SuitePorts> {
  for (let block = 0; block < PORT_BLOCKS; block++) {
    const base = PORT_RANGE_START + block * PORT_BLOCK_SIZE;
    const all = Array.from({ length: PORT_BLOCK_SIZE }, (_, i) => base + i);
    const free = await Promise.all(all.map(portFree));
    if (free.every(Boolean)) {
      return { serf: [base, base + 1], rpc: [base + 2, base + 3], shoal: [base + 4, base + 5, base + 6], wrongKey: base + 7, joinedBySerf: base + 8 };
    }
  }
  throw new Error(`No free block of ${PORT_BLOCK_SIZE} ports in ${PORT_RANGE_START}-${PORT_RANGE_START + PORT_BLOCKS * PORT_BLOCK_SIZE - 1}`);
}

for (const suite of SUITES) {
  describeInterop(`gossip: serf 0.9.4 interop, ${suite.label}`, ['serf'], () => {
    const key = randomBytes(32).toString('base64');
    const procs: Proc[] = [];
    const s = [`${suite.prefix}s1`, `${suite.prefix}s2`] as const;
    const ts = [`${suite.prefix}ts1`, `${suite.prefix}ts2`, `${suite.prefix}ts3`] as const;
    let serf: Proc[] = [];
    let shoal: Proc[] = [];
    let ports: SuitePorts;

    function startSerf(i: 0 | 1): Proc {
      const args = ['agent', `-node=${s[i]}`, `-bind=127.0.0.1:${ports.serf[i]}`, `-rpc-addr=127.0.0.1:${ports.rpc[i]}`, '-log-level=debug'];
      if (suite.encrypt) args.push(`-encrypt=${key}`);
      if (i === 1) args.push(`-join=127.0.0.1:${ports.serf[0]}`);
      const p = new Proc(s[i], spawn('serf', args, { stdio: ['pipe', 'pipe', 'pipe'] }));
      procs.push(p);
      return p;
    }

    function startShoal(name: string, port: number, join: readonly string[], nodeKey: string | undefined): Proc {
      const config = { name, port, join, ...(nodeKey && { key: nodeKey }), tags: { role: 'shoal', lang: 'typescript' } };
      const child = spawn(process.execPath, ['--import', 'tsx', RUNNER, JSON.stringify(config)], {
        cwd: REPO,
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, SHOAL_LOG_LEVEL: 'warn' },
      });
      const p = new Proc(name, child);
      procs.push(p);
      return p;
    }

    /** Waits for a serf agent to answer, failing early with its output when it exited (a port in use, say). */
    async function serfUp(p: Proc, rpcPort: number, ok: (m: SerfMember[]) => boolean): Promise<void> {
      await eventually(
        `${p.label} to answer RPC`,
        async () => {
          if (!p.running) throw new Error(`${p.label} exited: ${p.tail()}`);
          return serfMembers(rpcPort);
        },
        ok,
        20_000,
      ).catch((e: unknown) => {
        throw new Error(`${e instanceof Error ? e.message : String(e)}; ${p.tail()}`);
      });
    }

    beforeAll(async () => {
      ports = await reservePorts();
      serf = [startSerf(0)];
      await serfUp(serf[0]!, ports.rpc[0], (m) => m.length === 1);
      serf.push(startSerf(1));
      await serfUp(serf[1]!, ports.rpc[0], (m) => statusOf(m, s[1]) === 'alive');
      const nodeKey = suite.encrypt ? key : undefined;
      const [p0, p1, p2] = ports.shoal;
      // Joins in every direction: shoal → serf, shoal → shoal, and a shoal node seeded by the second agent.
      shoal = [startShoal(ts[0], p0, [`127.0.0.1:${ports.serf[0]}`], nodeKey)];
      await shoal[0]!.waitLine((l) => l['type'] === 'joined', 30_000);
      shoal.push(startShoal(ts[1], p1, [`127.0.0.1:${p0}`], nodeKey), startShoal(ts[2], p2, [`127.0.0.1:${ports.serf[1]}`], nodeKey));
      await Promise.all(shoal.slice(1).map((p) => p.waitLine((l) => l['type'] === 'joined', 30_000)));
    }, 90_000);

    afterAll(() => {
      for (const p of procs) p.kill();
    });

    it('serf members lists the shoal nodes alive, with their tags', { timeout: STEP_TIMEOUT_MS }, async () => {
      for (const rpc of ports.rpc) {
        const members = await eventually(
          `serf at ${rpc} to list ${ts.join(', ')} alive`,
          () => serfMembers(rpc),
          (m) => ts.every((n) => statusOf(m, n) === 'alive'),
        );
        const t1 = members.find((m) => m.name === ts[0])!;
        expect(t1.addr).toBe(`127.0.0.1:${ports.shoal[0]}`);
        expect(t1.tags).toEqual({ role: 'shoal', lang: 'typescript' });
      }
    });

    it('every shoal node lists the serf agents and the other shoal nodes alive', { timeout: STEP_TIMEOUT_MS }, async () => {
      for (const p of shoal) {
        await eventually(
          `${p.label} to list everyone alive`,
          () => shoalMembers(p),
          (m) => [...s, ...ts].every((n) => shoalStateOf(m, n) === 'alive'),
        );
        expect(p.lines.some((l) => l['type'] === 'event' && l['event'] === 'join' && l['member'] === s[0])).toBe(true);
      }
    });

    it('serf joins a shoal node: the shoal node answers serf’s push/pull', { timeout: STEP_TIMEOUT_MS }, async () => {
      const name = `${suite.prefix}ts4`;
      const t4 = startShoal(name, ports.joinedBySerf, [], suite.encrypt ? key : undefined);
      await t4.waitLine((l) => l['type'] === 'ready', 30_000);
      const r = await run('serf', ['join', `-rpc-addr=127.0.0.1:${ports.rpc[0]}`, `127.0.0.1:${ports.joinedBySerf}`]);
      expect(r.code).toBe(0);
      await eventually(`${name} to list the serf agents alive`, () => shoalMembers(t4), (m) => s.every((n) => shoalStateOf(m, n) === 'alive'));
      await eventually(`serf to list ${name} alive`, () => serfMembers(ports.rpc[1]), (m) => statusOf(m, name) === 'alive');
    });

    it('a SIGKILLed shoal node shows as failed in serf', { timeout: STEP_TIMEOUT_MS }, async () => {
      shoal[2]!.kill();
      for (const rpc of ports.rpc) {
        await eventually(`serf at ${rpc} to show ${ts[2]} failed`, () => serfMembers(rpc), (m) => statusOf(m, ts[2]) === 'failed');
      }
      // The other shoal nodes agree.
      await eventually(`${ts[0]} to see ${ts[2]} dead`, () => shoalMembers(shoal[0]!), (m) => shoalStateOf(m, ts[2]) === 'dead');
    });

    it('a SIGKILLed serf agent is declared dead by the shoal nodes', { timeout: STEP_TIMEOUT_MS }, async () => {
      serf[1]!.kill();
      for (const p of shoal.slice(0, 2)) {
        await eventually(`${p.label} to see ${s[1]} dead`, () => shoalMembers(p), (m) => shoalStateOf(m, s[1]) === 'dead');
        expect(p.lines.some((l) => l['type'] === 'event' && l['event'] === 'dead' && l['member'] === s[1])).toBe(true);
      }
      await eventually(`${s[0]} to show ${s[1]} failed`, () => serfMembers(ports.rpc[0]), (m) => statusOf(m, s[1]) === 'failed');
    });

    it('a shoal node that leaves shows as left in serf', { timeout: STEP_TIMEOUT_MS }, async () => {
      const leaver = shoal[1]!;
      leaver.child.stdin.write('leave\n');
      await leaver.waitLine((l) => l['type'] === 'left', 30_000);
      await eventually(`${s[0]} to show ${ts[1]} left`, () => serfMembers(ports.rpc[0]), (m) => statusOf(m, ts[1]) === 'left');
      await eventually(`${ts[0]} to see ${ts[1]} left`, () => shoalMembers(shoal[0]!), (m) => shoalStateOf(m, ts[1]) === 'left');
    });

    it('decoded everything serf sent: no message dropped as malformed', { timeout: STEP_TIMEOUT_MS }, async () => {
      const counters = (await shoal[0]!.ask('counters'))['counters'] as Record<string, number>;
      expect(counters['gossip_rx_messages']).toBeGreaterThan(0);
      for (const reason of ['truncated', 'bad_msgpack', 'bad_field', 'bad_crc', 'bad_compression', 'unknown_algo', 'unknown_type', 'decrypt_failed', 'not_encrypted']) {
        expect({ reason, count: counters[`gossip_rx_dropped_${reason}`] }).toEqual({ reason, count: 0 });
      }
      expect(shoal[0]!.running).toBe(true);
    });

    if (suite.encrypt) {
      it('refuses a node with the wrong key, counted, without crashing', { timeout: STEP_TIMEOUT_MS }, async () => {
        const wrongKey = randomBytes(32).toString('base64');
        const wrong = startShoal(`${suite.prefix}ts-wrong`, ports.wrongKey, [`127.0.0.1:${ports.serf[0]}`], wrongKey);
        // Its join to serf fails: serf cannot open what it sends.
        const join = await wrong.waitLine((l) => l['type'] === 'joined' || l['type'] === 'join-failed', 30_000);
        expect(join['type']).toBe('join-failed');
        // serf's join to it fails too, and the node counts why it refused serf's stream.
        const r = await run('serf', ['join', `-rpc-addr=127.0.0.1:${ports.rpc[0]}`, `127.0.0.1:${ports.wrongKey}`]);
        expect(r.code).not.toBe(0);
        const counters = await eventually(
          'the wrong-key node to count a decrypt failure',
          async () => (await wrong.ask('counters'))['counters'] as Record<string, number>,
          (c) => (c['gossip_rx_dropped_decrypt_failed'] ?? 0) > 0,
          20_000,
        );
        expect(counters['gossip_rx_dropped_decrypt_failed']).toBeGreaterThan(0);
        expect(wrong.running).toBe(true);
        expect(statusOf(await serfMembers(ports.rpc[0]), wrong.label)).toBeUndefined();
        expect(shoalStateOf(await shoalMembers(wrong), s[0])).toBeUndefined();
        wrong.kill();
      });
    }
  }, { root: false });
}
