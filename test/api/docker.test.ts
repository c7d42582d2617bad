/**
 * The Docker API's transport rules (spec §1, §2) on handleApiRequest with a stub swarm:
 * version prefixes, ping headers, error shape and statuses, query booleans and filters.
 */
import { describe, expect, it } from 'vitest';
import type { ControlPlane } from '../../src/agent/control-plane.js';
import type { SwarmInfo } from '../../src/agent/cluster-node.js';
import type { NodeView } from '../../src/cluster/types.js';
import { type ApiBackend, boolParam, handleApiRequest, parseFilters } from '../../src/api/docker.js';
import { NotFoundError, OutOfSequenceError, UnavailableError } from '../../src/lib/errors.js';

const INACTIVE: SwarmInfo = { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null };

function backend(control?: Partial<ControlPlane>): ApiBackend {
  return {
    nodeName: 'stub',
    cluster: {
      swarmHeader: () => (control ? 'active/manager' : 'inactive'),
      info: async () => INACTIVE,
      control: () => {
        if (!control) throw new UnavailableError('This node is not a swarm manager.');
        return control as ControlPlane;
      },
      init: async () => 'newnodeid',
      join: async () => undefined,
      leave: async () => undefined,
    },
  };
}

const req = (method: string, url: string, body = ''): { method: string; url: string; body: Buffer } => ({ method, url, body: Buffer.from(body) });

describe('Docker API transport', () => {
  it('answers HEAD and GET /_ping with the negotiation headers (HEAD without body)', async () => {
    const head = await handleApiRequest(backend(), req('HEAD', '/_ping'));
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers).toMatchObject({ 'Api-Version': '1.50', Ostype: 'linux', 'Docker-Experimental': 'false', Swarm: 'inactive', 'Cache-Control': 'no-cache, no-store, must-revalidate', Pragma: 'no-cache' });
    const get = await handleApiRequest(backend({}), req('GET', '/_ping'));
    expect(get.body).toBe('OK');
    expect(get.headers['Swarm']).toBe('active/manager');
  });

  it('routes any /v1.NN prefix from 1.24 to 1.50 and unversioned paths to the same handler', async () => {
    for (const url of ['/version', '/v1.24/version', '/v1.44/version', '/v1.50/version']) {
      const r = await handleApiRequest(backend(), req('GET', url));
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ ApiVersion: '1.50', MinAPIVersion: '1.24', Os: 'linux' });
    }
  });

  it('refuses versions outside 1.24–1.50 with dockerd\'s messages', async () => {
    const old = await handleApiRequest(backend(), req('GET', '/v1.12/version'));
    expect(old.status).toBe(400);
    expect(JSON.parse(old.body).message).toMatch(/^client version 1\.12 is too old\. Minimum supported API version is 1\.24/);
    const young = await handleApiRequest(backend(), req('GET', '/v1.51/version'));
    expect(JSON.parse(young.body).message).toBe('client version 1.51 is too new. Maximum supported API version is 1.50');
  });

  it('sends errors as {"message"} with Content-Type exactly application/json and dockerd\'s statuses', async () => {
    const cases: [Partial<ControlPlane> | undefined, string, string, number, string][] = [
      [undefined, 'GET', '/v1.50/nodes', 503, 'This node is not a swarm manager.'],
      [{ getNode: async (ref: string) => Promise.reject(new NotFoundError(`node ${ref} not found`)) }, 'GET', '/v1.50/nodes/nosuch', 404, 'node nosuch not found'],
      [{ updateNode: async () => Promise.reject(new OutOfSequenceError('update out of sequence')) }, 'POST', '/v1.50/nodes/x/update?version=3', 500, 'update out of sequence'],
      [{}, 'POST', '/v1.50/nodes/x/update', 400, 'invalid version "": the object\'s Version.Index is required'],
      [{}, 'GET', '/v1.50/nodes?filters=%7Bnope', 400, 'invalid filter: filters must be a JSON object'],
      [{}, 'GET', '/v1.50/plugins', 404, 'page not found'],
    ];
    for (const [control, method, url, status, message] of cases) {
      const r = await handleApiRequest(backend(control), req(method, url));
      expect([url, r.status]).toEqual([url, status]);
      expect(r.headers['Content-Type']).toBe('application/json');
      expect(JSON.parse(r.body)).toEqual({ message });
    }
  });

  it('answers swarm init with the node ID as a JSON string, and refuses bad JSON with 400', async () => {
    const r = await handleApiRequest(backend(), req('POST', '/v1.50/swarm/init', '{}'));
    expect(r).toMatchObject({ status: 200, body: '"newnodeid"' });
    const bad = await handleApiRequest(backend(), req('POST', '/v1.50/swarm/init', '{"ListenAddr":'));
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).message).toMatch(/^invalid JSON in the request body/);
  });

  it('shows an inactive swarm in /info', async () => {
    const r = await handleApiRequest(backend(), req('GET', '/v1.50/info'));
    expect(JSON.parse(r.body)).toMatchObject({ Name: 'stub', Swarm: INACTIVE });
  });

  it('passes node references through, percent-decoded, and DELETE ?force as a boolean', async () => {
    const seen: unknown[] = [];
    const control = { getNode: async (ref: string) => (seen.push(ref), { ID: ref } as unknown as NodeView), removeNode: async (ref: string, force: boolean) => void seen.push([ref, force]) };
    await handleApiRequest(backend(control), req('GET', '/v1.50/nodes/a%20b'));
    await handleApiRequest(backend(control), req('DELETE', '/v1.50/nodes/w1?force=1'));
    await handleApiRequest(backend(control), req('DELETE', '/v1.50/nodes/w2'));
    expect(seen).toEqual(['a b', ['w1', true], ['w2', false]]);
  });
});

describe('query parameters', () => {
  it.each([
    ['1', true], ['true', true], ['yes', true], ['', false], ['0', false], ['no', false], ['false', false], ['FALSE', false], ['none', false],
  ])('reads %j as %s, as dockerd', (value, expected) => {
    expect(boolParam(new URLSearchParams({ force: value }), 'force')).toBe(expected);
  });

  it('reads filters in map and list form', () => {
    expect(parseFilters('{"role":{"manager":true,"worker":false},"name":["a","b"]}')).toEqual({ role: ['manager'], name: ['a', 'b'] });
    expect(parseFilters(null)).toEqual({});
    expect(() => parseFilters('{"role":"manager"}')).toThrow("invalid filter 'role'");
  });
});
