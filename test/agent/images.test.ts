/**
 * Built-in images: references with tags and digests, and shoal/ping run as a process (TCP
 * "echo" probes to 127.0.0.113, ports 24210–24219 are this file's own).
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { builtinImageCommand, builtinImages, imageName } from '../../src/agent/images/index.js';
import { formatStats, parsePingArgs } from '../../src/agent/images/ping.js';

describe('image references', () => {
  it.each([
    ['shoal/whoami', 'shoal/whoami'],
    ['shoal/whoami:latest', 'shoal/whoami'],
    ['shoal/ping@sha256:0123abcd', 'shoal/ping'],
    ['shoal/ping:1.0@sha256:0123abcd', 'shoal/ping'],
    ['registry:5000/shoal/ping', 'registry:5000/shoal/ping'],
    ['registry:5000/shoal/ping:2', 'registry:5000/shoal/ping'],
  ])('%s names %s', (ref, name) => {
    expect(imageName(ref)).toBe(name);
  });

  it('knows whoami and ping, with or without a tag, and nothing else', () => {
    expect(builtinImages()).toEqual(['shoal/whoami', 'shoal/ping']);
    expect(builtinImageCommand('shoal/ping:latest')?.at(-1)).toMatch(/ping\.(ts|js)$/);
    expect(builtinImageCommand('alpine')).toBeUndefined();
    expect(builtinImageCommand('shoal/pingx')).toBeUndefined();
  });
});

describe('ping arguments', () => {
  it.each([
    [['127.0.0.1'], { host: '127.0.0.1', intervalMs: 1000, timeoutMs: 5000, port: 7 }],
    [['-c', '3', '-i', '0.2', '-W', '2', '-p', '80', 'web'], { host: 'web', count: 3, intervalMs: 200, timeoutMs: 2000, port: 80 }],
  ])('%j', (args, want) => {
    expect(parsePingArgs(args)).toEqual(want);
  });

  it.each([
    [[], /usage: ping/],
    [['-c', '0', 'h'], /invalid count/],
    [['-p', '70000', 'h'], /invalid port/],
    [['-x', 'h'], /unknown option -x/],
    [['a', 'b'], /one host only/],
  ])('%j is refused', (args, message) => {
    expect(parsePingArgs(args)).toMatch(message);
  });

  it('closes with BusyBox statistics', () => {
    expect(formatStats('h', 4, [1, 2, 3])).toBe('--- h ping statistics ---\n4 packets transmitted, 3 packets received, 25% packet loss\nround-trip min/avg/max = 1.000/2.000/3.000 ms');
    expect(formatStats('h', 2, [])).toBe('--- h ping statistics ---\n2 packets transmitted, 0 packets received, 100% packet loss');
  });
});

function runPing(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [cmd, ...rest] = builtinImageCommand('shoal/ping')!;
  const child = spawn(cmd!, [...rest, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('shoal/ping', () => {
  it('pings a host once per interval, one line per answer (a refused connect is an answer), then the statistics', async () => {
    const r = await runPing(['-c', '3', '-i', '0.1', '127.0.0.113']);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('PING 127.0.0.113 (127.0.0.113): TCP port 7');
    expect(lines.slice(1, 4)).toEqual([0, 1, 2].map((seq) => expect.stringMatching(new RegExp(`^tcp from 127\\.0\\.0\\.113:7: seq=${seq} time=\\d+\\.\\d{3} ms$`))));
    expect(lines[4]).toBe('--- 127.0.0.113 ping statistics ---');
    expect(lines[5]).toBe('3 packets transmitted, 3 packets received, 0% packet loss');
    expect(lines[6]).toMatch(/^round-trip min\/avg\/max = [\d.]+\/[\d.]+\/[\d.]+ ms$/);
    expect(r.code).toBe(0);
  });

  it('pings a listening port too', async () => {
    const server = createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen(24210, '127.0.0.113', resolve));
    try {
      const r = await runPing(['-c', '1', '-p', '24210', '127.0.0.113']);
      expect(r.stdout).toMatch(/^tcp from 127\.0\.0\.113:24210: seq=0 time=/m);
      expect(r.code).toBe(0);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('says what is wrong with its arguments or host, and exits non-zero', async () => {
    expect(await runPing([])).toMatchObject({ code: 2, stderr: expect.stringMatching(/usage: ping/) as unknown });
    expect(await runPing(['-c', '1', 'no-such-host.invalid'])).toMatchObject({ code: 1, stderr: "ping: bad address 'no-such-host.invalid'\n" });
  });
});
