/**
 * ServiceSpec checking (spec §5.3, §9.1): every body the docker CLI sends is accepted as sent,
 * every field outside the type is refused by name, what shoal acts on is checked for meaning,
 * and no input whatever makes the parser throw anything but a 400 or a 409.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { imageName, parseServiceSpec, resolvePorts, withDefaults } from '../../src/cluster/service-spec.js';
import { ConflictError, InvalidArgumentError } from '../../src/lib/errors.js';
import { FUZZ_RUNS } from '../helpers/fuzz.js';

/** `docker service create --name web --replicas 3 -p 8080:80 shoal/whoami`, as observed (§5.3). */
const CLI_CREATE = {
  Name: 'web',
  Labels: {},
  TaskTemplate: {
    ContainerSpec: { Image: 'shoal/whoami:latest', Init: false, DNSConfig: {} },
    Resources: { Limits: {}, Reservations: {} },
    Placement: {},
    ForceUpdate: 0,
  },
  Mode: { Replicated: { Replicas: 3 } },
  EndpointSpec: { Mode: 'vip', Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' }] },
};

/** The stack-deploy body of §6 (with a shoal image): nulls, Privileges, Platforms, UpdateConfig, Networks by name. */
const STACK_CREATE = {
  Name: 's_web',
  Labels: { 'com.docker.stack.image': 'shoal/whoami', 'com.docker.stack.namespace': 's' },
  TaskTemplate: {
    ContainerSpec: {
      Image: 'shoal/whoami:latest',
      Labels: { 'com.docker.stack.namespace': 's' },
      Env: ['FOO=bar'],
      Privileges: { CredentialSpec: null, SELinuxContext: null, NoNewPrivileges: false },
    },
    Resources: {},
    RestartPolicy: { Condition: 'on-failure' },
    Placement: { Platforms: [{ Architecture: 'amd64', OS: 'linux' }, { Architecture: 'arm64', OS: 'linux' }] },
    Networks: [{ Target: 's_front', Aliases: ['web'] }],
    ForceUpdate: 0,
  },
  Mode: { Replicated: { Replicas: 2 } },
  UpdateConfig: { Parallelism: 1, Delay: 2000000000, MaxFailureRatio: 0, Order: '' },
  EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8081, PublishMode: 'ingress' }] },
};

/** JSON edited in place by the tests: `any` keeps the table of edits readable. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

/** A spec with one change at a path. */
function edit(base: unknown, change: (spec: Record<string, Json>) => void): unknown {
  const copy = structuredClone(base) as Record<string, Json>;
  change(copy);
  return copy;
}

function refusal(body: unknown): string {
  try {
    parseServiceSpec(body);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    return (error as Error).message;
  }
  throw new Error('accepted');
}

describe('parseServiceSpec accepts what the docker CLI sends', () => {
  it('keeps the create body as sent, and fills Labels and one replica when absent', () => {
    expect(parseServiceSpec(CLI_CREATE)).toEqual(CLI_CREATE);
    const bare = parseServiceSpec({ Name: 'x', TaskTemplate: { ContainerSpec: { Image: 'shoal/ping' } }, Mode: { Replicated: {} } });
    expect(bare).toEqual({ Name: 'x', Labels: {}, TaskTemplate: { ContainerSpec: { Image: 'shoal/ping' } }, Mode: { Replicated: { Replicas: 1 } } });
    expect(parseServiceSpec({ Name: 'x', TaskTemplate: { ContainerSpec: { Image: 'shoal/ping' } } }).Mode).toEqual({ Replicated: { Replicas: 1 } });
  });

  it('accepts the stack-deploy body and drops its null fields, as Go reads them', () => {
    const parsed = parseServiceSpec(STACK_CREATE);
    expect(parsed.TaskTemplate.ContainerSpec['Privileges']).toEqual({ NoNewPrivileges: false });
    expect(parsed.UpdateConfig).toEqual(STACK_CREATE.UpdateConfig);
    expect(parsed.TaskTemplate.Networks).toEqual([{ Target: 's_front', Aliases: ['web'] }]);
  });

  it('accepts every field of the full type (§5.3), global mode, and every flag the issue names', () => {
    const full = {
      Name: 'g',
      Labels: { a: 'b' },
      TaskTemplate: {
        ContainerSpec: {
          Image: '/usr/bin/env', Labels: {}, Command: ['/bin/sh'], Args: ['-c', 'sleep 1'], Hostname: 'h', Env: ['A=1', 'EMPTY='], Dir: '/tmp', User: 'nobody', Groups: ['g'],
          Privileges: { CredentialSpec: { Config: 'x' }, SELinuxContext: { Disable: true }, Seccomp: { Mode: 'default' }, AppArmor: { Mode: 'default' }, NoNewPrivileges: true }, Init: false, StopSignal: 'SIGTERM', TTY: false,
          OpenStdin: false, ReadOnly: false, Mounts: [{ Type: 'bind', Source: '/a', Target: '/b', ReadOnly: true }], StopGracePeriod: 10_000_000_000,
          Healthcheck: { Test: ['CMD-SHELL', 'true'], Interval: 1e9, Timeout: 1e9, StartPeriod: 0, StartInterval: 5e9, Retries: 3 }, Hosts: ['1.2.3.4 x'],
          DNSConfig: { Nameservers: ['1.1.1.1'], Search: ['x'], Options: ['ndots:1'] }, Secrets: [], Configs: [], Isolation: 'default', Sysctls: { 'net.x': '1' },
          CapabilityAdd: ['CAP_NET_ADMIN'], CapabilityDrop: [], Ulimits: [{ Name: 'nofile', Soft: 1024, Hard: 2048 }], OomScoreAdj: -10,
        },
        Resources: { Limits: { NanoCPUs: 1e9, MemoryBytes: 67108864, Pids: 100 }, Reservations: { NanoCPUs: 0, MemoryBytes: 0, GenericResources: [] } },
        RestartPolicy: { Condition: 'any', Delay: 5e9, MaxAttempts: 0, Window: 0 },
        Placement: { Constraints: ['node.role==manager', 'node.hostname != a', 'node.labels.disk==ssd', 'node.id==abc'], Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.az' } }], MaxReplicas: 2, Platforms: [] },
        Networks: [{ Target: 'net1', Aliases: ['x'], DriverOpts: {} }],
        LogDriver: { Name: 'json-file', Options: {} },
        ForceUpdate: 3,
        Runtime: 'container',
      },
      Mode: { Global: {} },
      UpdateConfig: { Parallelism: 2, Delay: 0, FailureAction: 'pause', Monitor: 1e9, MaxFailureRatio: 0.5, Order: 'stop-first' },
      RollbackConfig: { Parallelism: 1, FailureAction: 'continue', Monitor: 0, MaxFailureRatio: 0, Order: 'start-first' },
      EndpointSpec: { Mode: 'dnsrr', Ports: [{ Name: 'http', Protocol: 'udp', TargetPort: 53, PublishedPort: 5353, PublishMode: 'host' }] },
    };
    expect(parseServiceSpec(full)).toEqual(full);
  });

  it.each(['shoal/whoami', 'shoal/whoami:latest', 'shoal/ping:1.0', `shoal/whoami@sha256:${'ab'.repeat(32)}`, `shoal/whoami:latest@sha256:${'ab'.repeat(32)}`, '/bin/echo'])('accepts the image %s', (image) => {
    expect(parseServiceSpec(edit(CLI_CREATE, (s) => (s['TaskTemplate'].ContainerSpec.Image = image))).TaskTemplate.ContainerSpec.Image).toBe(image);
  });
});

describe('parseServiceSpec refuses bad specs with a 400 naming the field', () => {
  const cases: [string, (s: Record<string, Json>) => void, string | RegExp][] = [
    ['a misspelt Replicaz', (s) => (s['Mode'] = { Replicated: { Replicaz: 3 } }), 'unknown field "Replicaz" in Mode.Replicated'],
    ['an unknown top-level field', (s) => (s['Replicas'] = 3), 'unknown field "Replicas" in ServiceSpec'],
    ['an unknown ContainerSpec field', (s) => (s['TaskTemplate'].ContainerSpec.Entrypoint = ['x']), 'unknown field "Entrypoint" in TaskTemplate.ContainerSpec'],
    ['an unknown port field', (s) => (s['EndpointSpec'].Ports[0].HostPort = 1), 'unknown field "HostPort" in EndpointSpec.Ports[0]'],
    ['__proto__ as a field', (s) => Object.defineProperty(s['TaskTemplate'], '__proto__', { value: {}, enumerable: true }), 'unknown field "__proto__" in TaskTemplate'],
    ['an unknown image', (s) => (s['TaskTemplate'].ContainerSpec.Image = 'nginx:latest'), /^unknown image "nginx:latest": shoal runs the built-in images \(shoal\/whoami, shoal\/ping\)/],
    ['a relative path', (s) => (s['TaskTemplate'].ContainerSpec.Image = 'bin/sh'), /^unknown image "bin\/sh"/],
    ['a built-in with a bad tag', (s) => (s['TaskTemplate'].ContainerSpec.Image = 'shoal/whoami: x'), /^unknown image/],
    ['no image', (s) => delete s['TaskTemplate'].ContainerSpec.Image, 'TaskTemplate.ContainerSpec.Image is required'],
    ['no ContainerSpec', (s) => (s['TaskTemplate'] = {}), 'TaskTemplate.ContainerSpec is required'],
    ['negative replicas', (s) => (s['Mode'] = { Replicated: { Replicas: -1 } }), 'Mode.Replicated.Replicas must be an integer from 0 to 10000'],
    ['replicas as a string', (s) => (s['Mode'] = { Replicated: { Replicas: '3' } }), 'Mode.Replicated.Replicas must be an integer from 0 to 10000'],
    ['two modes', (s) => (s['Mode'] = { Replicated: {}, Global: {} }), 'Mode must name exactly one of Replicated or Global'],
    ['a job mode', (s) => (s['Mode'] = { ReplicatedJob: {} }), 'Mode ReplicatedJob is not supported: use Replicated or Global'],
    ['target port 0', (s) => (s['EndpointSpec'].Ports[0].TargetPort = 0), 'EndpointSpec.Ports[0].TargetPort must be a port from 1 to 65535'],
    ['published port 70000', (s) => (s['EndpointSpec'].Ports[0].PublishedPort = 70000), 'EndpointSpec.Ports[0].PublishedPort must be a port from 0 to 65535'],
    ['sctp', (s) => (s['EndpointSpec'].Ports[0].Protocol = 'sctp'), 'EndpointSpec.Ports[0].Protocol must be tcp or udp'],
    ['an endpoint mode', (s) => (s['EndpointSpec'].Mode = 'round-robin'), 'EndpointSpec.Mode must be vip or dnsrr, not "round-robin"'],
    ['dnsrr with an ingress port', (s) => (s['EndpointSpec'].Mode = 'dnsrr'), "port published with ingress mode can't be used with dnsrr mode"],
    ['Env without =', (s) => (s['TaskTemplate'].ContainerSpec.Env = ['A=1', 'JUSTKEY']), 'TaskTemplate.ContainerSpec.Env[1] must be KEY=VALUE, not "JUSTKEY"'],
    ['Env as a string', (s) => (s['TaskTemplate'].ContainerSpec.Env = 'A=1'), 'TaskTemplate.ContainerSpec.Env must be a list'],
    ['Args with a number', (s) => (s['TaskTemplate'].ContainerSpec.Args = ['a', 1]), 'TaskTemplate.ContainerSpec.Args[1] must be a string'],
    ['a Healthcheck CMD without a command', (s) => (s['TaskTemplate'].ContainerSpec.Healthcheck = { Test: ['CMD'] }), /^TaskTemplate\.ContainerSpec\.Healthcheck\.Test must be \["NONE"\]/],
    ['a Healthcheck of unknown form', (s) => (s['TaskTemplate'].ContainerSpec.Healthcheck = { Test: ['curl', 'x'] }), /^TaskTemplate\.ContainerSpec\.Healthcheck\.Test must be/],
    ['a CMD-SHELL with two words', (s) => (s['TaskTemplate'].ContainerSpec.Healthcheck = { Test: ['CMD-SHELL', 'a', 'b'] }), /^TaskTemplate\.ContainerSpec\.Healthcheck\.Test must be/],
    ['a negative interval', (s) => (s['TaskTemplate'].ContainerSpec.Healthcheck = { Interval: -1 }), 'TaskTemplate.ContainerSpec.Healthcheck.Interval must be a non-negative integer number of nanoseconds'],
    ['a sub-millisecond interval', (s) => (s['TaskTemplate'].ContainerSpec.Healthcheck = { Interval: 500 }), 'TaskTemplate.ContainerSpec.Healthcheck.Interval cannot be less than 1ms'],
    ['a duration as a string', (s) => (s['UpdateConfig'] = { Monitor: '5s' }), 'UpdateConfig.Monitor must be a non-negative integer number of nanoseconds'],
    ['a fractional delay', (s) => (s['TaskTemplate'].RestartPolicy = { Delay: 1.5 }), 'TaskTemplate.RestartPolicy.Delay must be a non-negative integer number of nanoseconds'],
    ['a restart condition', (s) => (s['TaskTemplate'].RestartPolicy = { Condition: 'always' }), 'TaskTemplate.RestartPolicy.Condition must be one of none, on-failure, any, not "always"'],
    ['negative max attempts', (s) => (s['TaskTemplate'].RestartPolicy = { MaxAttempts: -2 }), 'TaskTemplate.RestartPolicy.MaxAttempts must be a non-negative integer'],
    ['a failure action', (s) => (s['UpdateConfig'] = { FailureAction: 'explode' }), 'UpdateConfig.FailureAction must be pause, continue or rollback, not "explode"'],
    ['an update order', (s) => (s['RollbackConfig'] = { Order: 'random' }), 'RollbackConfig.Order must be stop-first or start-first, not "random"'],
    ['a failure ratio above 1', (s) => (s['UpdateConfig'] = { MaxFailureRatio: 2 }), 'UpdateConfig.MaxFailureRatio must be from 0 to 1'],
    ['a constraint without operator', (s) => (s['TaskTemplate'].Placement = { Constraints: ['node.role=manager'] }), /^TaskTemplate\.Placement\.Constraints\[0\] "node\.role=manager" is not a constraint/],
    ['a constraint on an unknown attribute', (s) => (s['TaskTemplate'].Placement = { Constraints: ['node.colour==red'] }), /is not a constraint: use node\.id, node\.hostname, node\.role or node\.labels\.<key>/],
    ['a constraint without value', (s) => (s['TaskTemplate'].Placement = { Constraints: ['node.role=='] }), /is not a constraint/],
    ['negative MaxReplicas', (s) => (s['TaskTemplate'].Placement = { MaxReplicas: -1 }), 'TaskTemplate.Placement.MaxReplicas must be a non-negative integer'],
    ['a label that is not a string', (s) => (s['Labels'] = { a: 1 }), 'Labels.a must be a string'],
    ['a bad name', (s) => (s['Name'] = '-web'), /^invalid name "-web"/],
    ['a network without target', (s) => (s['TaskTemplate'].Networks = [{ Aliases: [] }]), 'TaskTemplate.Networks[0].Target must name a network'],
    ['Init as a string', (s) => (s['TaskTemplate'].ContainerSpec.Init = 'false'), 'TaskTemplate.ContainerSpec.Init must be true or false'],
  ];
  it.each(cases)('refuses %s', (_what, change, message) => {
    const got = refusal(edit(CLI_CREATE, change));
    if (typeof message === 'string') expect(got).toBe(message);
    else expect(got).toMatch(message);
  });

  it('refuses bodies that are not objects', () => {
    for (const body of [null, [], 'web', 3, undefined]) expect(refusal(body)).toBe('ServiceSpec must be a JSON object');
  });

  it('never throws anything but InvalidArgumentError or ConflictError, whatever the JSON (fast-check)', () => {
    // Structured mutations of a good spec reach deep fields; raw JSON covers the rest.
    const mutated = fc
      .tuple(fc.constantFrom(CLI_CREATE, STACK_CREATE), fc.array(fc.tuple(fc.array(fc.constantFrom('TaskTemplate', 'ContainerSpec', 'Mode', 'Replicated', 'EndpointSpec', 'Ports', 0, 'Healthcheck', 'Env', 'Placement', 'RestartPolicy', 'Labels', 'UpdateConfig'), { maxLength: 4 }), fc.jsonValue({ maxDepth: 2 })), { maxLength: 4 }))
      .map(([base, edits]) =>
        edit(base, (s) => {
          for (const [keys, value] of edits) {
            let o: Json = s;
            for (const k of keys.slice(0, -1)) o = o !== null && typeof o === 'object' ? o[k] : undefined;
            const last = keys.at(-1);
            if (o !== null && typeof o === 'object' && last !== undefined) o[last] = value;
          }
        }),
      );
    fc.assert(
      fc.property(fc.oneof(mutated, fc.jsonValue({ maxDepth: 5 }), fc.anything({ maxDepth: 4 })), (body) => {
        try {
          const spec = parseServiceSpec(body);
          // What passes is usable: a built-in or absolute image, one mode, a sane replica count.
          expect(spec.TaskTemplate.ContainerSpec.Image).toMatch(/^(\/|shoal\/)/);
          if ('Replicated' in spec.Mode) expect(spec.Mode.Replicated.Replicas).toBeGreaterThanOrEqual(0);
        } catch (error) {
          if (!(error instanceof InvalidArgumentError || error instanceof ConflictError)) throw error;
        }
      }),
      { numRuns: Math.min(FUZZ_RUNS, 20_000) },
    );
  });
});

describe('the rules around specs', () => {
  it('imageName drops tag and digest, keeps paths', () => {
    expect(imageName(`shoal/whoami:latest@sha256:${'ab'.repeat(32)}`)).toBe('shoal/whoami');
    expect(imageName('shoal/ping:1')).toBe('shoal/ping');
    expect(imageName('/opt/x:1/bin')).toBe('/opt/x:1/bin');
  });

  it('resolvePorts fills protocol and mode, assigns from 30000 and refuses a taken port', () => {
    expect(resolvePorts([{ TargetPort: 80 }, { TargetPort: 81, PublishedPort: 8080 }], new Set(['tcp/30000']))).toEqual([
      { Protocol: 'tcp', TargetPort: 80, PublishedPort: 30001, PublishMode: 'ingress' },
      { Protocol: 'tcp', TargetPort: 81, PublishedPort: 8080, PublishMode: 'ingress' },
    ]);
    expect(() => resolvePorts([{ TargetPort: 80, PublishedPort: 8080 }], new Set(['tcp/8080']))).toThrow(ConflictError);
  });

  it('withDefaults fills what inspect shows (§9.4)', () => {
    const d = withDefaults(parseServiceSpec(CLI_CREATE));
    expect(d.TaskTemplate.RestartPolicy).toEqual({ Condition: 'any', Delay: 5e9, MaxAttempts: 0 });
    expect(d.UpdateConfig).toEqual({ Parallelism: 1, FailureAction: 'pause', Monitor: 5e9, MaxFailureRatio: 0, Order: 'stop-first' });
    expect(d.TaskTemplate.ContainerSpec['StopGracePeriod']).toBe(10e9);
  });
});
