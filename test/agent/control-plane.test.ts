/**
 * Forwarded control calls are untrusted input (another manager's `{Method, Args}`): callControl
 * checks every argument before the leader's control plane sees it, and forwards only the lines
 * kept of a log stream.
 */
import { describe, expect, it } from 'vitest';
import { type ControlPlane, callControl } from '../../src/agent/control-plane.js';
import { InvalidArgumentError } from '../../src/lib/errors.js';

/** A control plane that records the arguments it was called with. */
function recorder(): { control: ControlPlane; calls: unknown[][] } {
  const calls: unknown[][] = [];
  const control = new Proxy({} as ControlPlane, {
    get: (_t, method: string) => async (...args: unknown[]) => {
      calls.push([method, ...args]);
      return method === 'logs' ? { entries: [{ TaskID: 't', Line: 'x' }], subscribe: () => () => undefined } : { ok: method };
    },
  });
  return { control, calls };
}

describe('callControl', () => {
  it('passes well-formed calls on with their arguments normalised', async () => {
    const { control, calls } = recorder();
    await callControl(control, 'listServices', [{ name: ['web'] }, { status: true }]);
    await callControl(control, 'getService', ['web', { insertDefaults: 'yes' }]);
    await callControl(control, 'updateService', ['web', 7, { Name: 'web' }, { rollback: true }]);
    await callControl(control, 'listTasks', [{ '_up-to-date': ['true'] }]);
    await callControl(control, 'createNetwork', [{ Name: 'n' }]);
    await callControl(control, 'logs', [{ task: 't1' }, { tail: 3, sinceMs: 1.5 }]);
    expect(calls).toEqual([
      ['listServices', { name: ['web'] }, { status: true }],
      ['getService', 'web', { insertDefaults: false }],
      ['updateService', 'web', 7, { Name: 'web' }, { rollback: true }],
      ['listTasks', { '_up-to-date': ['true'] }],
      ['createNetwork', { Name: 'n' }],
      ['logs', { task: 't1' }, { tail: 3, sinceMs: 1.5 }],
    ]);
  });

  it('answers a forwarded logs call with the lines kept only (a subscription cannot travel)', async () => {
    const { control } = recorder();
    expect(await callControl(control, 'logs', [{ service: 's' }, {}])).toEqual({ entries: [{ TaskID: 't', Line: 'x' }] });
  });

  it.each<[string, unknown, string]>([
    ['getService', [1], 'expected a string argument'],
    ['updateService', ['web', '7', {}, {}], 'expected an integer argument'],
    ['updateService', ['web', 1.5, {}, {}], 'expected an integer argument'],
    ['listServices', [{ name: 'web' }, {}], "invalid filter 'name'"],
    ['listTasks', [{ service: [1] }], 'expected a string argument'],
    ['listNetworks', [[]], 'filters must be a JSON object'],
    ['logs', [{ service: 's', task: 't' }, {}], 'log selector must name one service or one task'],
    ['logs', [{}, {}], 'log selector must name one service or one task'],
    ['logs', [{ task: 't' }, { tail: -1 }], 'log option tail must be a non-negative integer'],
    ['logs', [{ task: 't' }, { sinceMs: 'now' }], 'log option sinceMs must be a number'],
    ['removeService', [], 'expected a string argument'],
    ['constructor', [], 'unknown control method "constructor"'],
    ['__proto__', [], 'unknown control method "__proto__"'],
  ])('refuses %s(%j)', async (method, args, message) => {
    const { control, calls } = recorder();
    await expect(callControl(control, method, args)).rejects.toThrow(new InvalidArgumentError(message));
    expect(calls).toEqual([]);
  });

  it('keeps a "__proto__" filter key a key', async () => {
    const { control, calls } = recorder();
    await callControl(control, 'listTasks', [JSON.parse('{"__proto__":["x"]}')]);
    const filters = calls[0]![1] as Record<string, unknown>;
    expect(Object.keys(filters)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(filters)).toBe(Object.prototype);
  });
});
