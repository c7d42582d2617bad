/**
 * One shoal gossip node in its own process, for the serf interop tests (gossip-serf.test.ts).
 *
 *   node --import tsx test/interop/gossip-node-runner.ts '{"name":"ts1","port":47950,"join":["127.0.0.1:47946"]}'
 *
 * argv[2] is a JSON RunnerConfig. stdout carries JSON lines only:
 *   {"type":"ready","name","port"}          bound and started (joins run after this)
 *   {"type":"joined","count"} / {"type":"join-failed","error"}
 *   {"type":"event","event":"join|update|alive|suspect|dead|leave","member","state"}
 *   {"type":"members","members":[{name,state,host,port,incarnation}]}   answer to "members"
 *   {"type":"counters","counters":{...}}                                  answer to "counters"
 *   {"type":"left"}                                                       after "leave", then exit 0
 * stdin takes one command per line: members, counters, leave.
 *
 * To show as *left* in serf (not failed), "leave" first sends serf's leave intent
 * `[8][0][msgpack {LTime, Node, Prune}]` with an LTime above every serf Lamport time seen, waits,
 * then leaves memberlist's way (spec §14.5).
 */
import { createInterface } from 'node:readline';
import { RealClock } from '../../src/lib/clock.js';
import { CryptoRng } from '../../src/lib/rng.js';
import { Memberlist, type Member } from '../../src/gossip/memberlist.js';
import { NodeTransport } from '../../src/gossip/node-transport.js';
import { Keyring } from '../../src/wire/memberlist/crypto.js';
import { decodeMsgpack, encodeMsgpack, type MsgpackValue } from '../../src/wire/memberlist/msgpack.js';

interface RunnerConfig {
  readonly name: string;
  readonly port: number;
  readonly host?: string;
  readonly join?: readonly string[];
  /** serf keygen's base64 key: encrypt like serf's -encrypt. */
  readonly key?: string;
  /** Shown by `serf members` as tags. */
  readonly tags?: Readonly<Record<string, string>>;
}

const config = JSON.parse(process.argv[2] ?? '{}') as RunnerConfig;

function out(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** The highest serf Lamport time seen in serf messages and push/pull state (spec §14.2, §14.4). */
let serfLTime = 0;

function witness(value: MsgpackValue): void {
  if (!(value instanceof Map)) return;
  for (const key of ['LTime', 'EventLTime', 'QueryLTime']) {
    const t = value.get(key);
    if (typeof t === 'number' && t > serfLTime) serfLTime = t;
  }
  const status = value.get('StatusLTimes');
  if (status instanceof Map) for (const t of status.values()) if (typeof t === 'number' && t > serfLTime) serfLTime = t;
}

/** serf messages are `[serf type][msgpack]`; push/pull user state is `[2][msgpack]`. */
function witnessSerf(bytes: Uint8Array): void {
  if (bytes.length < 2) return;
  const r = decodeMsgpack(bytes.subarray(1));
  if (r.ok) witness(r.value);
}

/** serf's tag encoding: 0xff then a msgpack map of strings (spec §14.1). */
function tagsMeta(tags: Readonly<Record<string, string>>): Uint8Array {
  return Uint8Array.of(0xff, ...encodeMsgpack(new Map(Object.entries(tags))));
}

const memberJson = (m: Member): object => ({ name: m.name, state: m.state, host: m.address.host, port: m.address.port, incarnation: m.incarnation });

async function main(): Promise<void> {
  const clock = new RealClock();
  const transport = await NodeTransport.bind({ host: config.host ?? '127.0.0.1', port: config.port, clock });
  const meta = tagsMeta(config.tags ?? { role: 'shoal' });
  const ml = Memberlist.create({
    name: config.name,
    transport,
    clock,
    rng: new CryptoRng(),
    ...(config.key && { keyring: Keyring.fromBase64(config.key) }),
    delegate: {
      nodeMeta: () => meta,
      notifyMsg: witnessSerf,
      mergeRemoteState: witnessSerf,
      notifyEvent: (e) => out({ type: 'event', event: e.type, member: e.member.name, state: e.member.state }),
    },
  });
  out({ type: 'ready', name: config.name, port: transport.localAddress.port });

  if (config.join && config.join.length > 0) {
    ml.join(config.join).then(
      (count) => out({ type: 'joined', count }),
      (e: unknown) => out({ type: 'join-failed', error: e instanceof Error ? e.message : String(e) }),
    );
  }

  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const cmd = line.trim();
    if (cmd === 'members') out({ type: 'members', members: ml.allMembers().map(memberJson) });
    else if (cmd === 'counters') out({ type: 'counters', counters: { ...ml.counters.snapshot(), ...transport.counters.snapshot() } });
    else if (cmd === 'leave') void leave(ml);
  });
  // The test process went away without killing us: do not linger.
  rl.on('close', () => {
    ml.shutdown();
    process.exit(0);
  });
}

async function leave(ml: Memberlist): Promise<void> {
  const intent = Uint8Array.of(
    0, // serf messageLeaveType (SERF serf/messages.go:15-26)
    ...encodeMsgpack(
      new Map<MsgpackValue, MsgpackValue>([
        ['LTime', serfLTime + 1],
        ['Node', ml.name],
        ['Prune', false],
      ]),
    ),
  );
  ml.queueBroadcast(intent, `serf-leave:${ml.name}`);
  for (const m of ml.members()) if (m.name !== ml.name) ml.sendBestEffort(m, intent);
  // memberlist handles low-priority messages LIFO: the intent must land before our dead (spec §14.5).
  await new Promise((r) => setTimeout(r, 500));
  try {
    await ml.leave(5_000);
  } finally {
    ml.shutdown();
    out({ type: 'left' });
    process.exit(0);
  }
}

main().catch((e: unknown) => {
  out({ type: 'fatal', error: e instanceof Error ? e.message : String(e) });
  process.exit(1);
});
