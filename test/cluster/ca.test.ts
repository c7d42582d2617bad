/**
 * The cluster CA against independent checkers: Node's X509Certificate and OpenSSL's own
 * `openssl verify` and `openssl x509 -text`.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClusterCa, certificateNeedsRenewal, generateNodeKey, requireManager } from '../../src/cluster/ca.js';
import { SeededRng } from '../../src/lib/rng.js';

const NOW = Date.parse('2026-11-25T12:00:00Z');
const HOUR = 3600_000;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'shoal-ca-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8' });
}

describe('cluster CA', () => {
  const ca = ClusterCa.create('clusterid0000000000000001', NOW, new SeededRng(1));
  const key = generateNodeKey();
  const cert = ca.issue({ nodeId: 'node1', role: 'worker', clusterId: 'clusterid0000000000000001' }, key.publicKeyPem, NOW, 90 * 24 * HOUR, new SeededRng(2));

  it('makes a self-signed CA certificate that Node parses', () => {
    const x = new X509Certificate(ca.certPem);
    expect(x.ca).toBe(true);
    expect(x.subject).toBe('CN=swarm-ca\nO=clusterid0000000000000001');
    expect(x.verify(x.publicKey)).toBe(true);
  });

  it('issues node certificates that OpenSSL verifies against the CA, with swarmkit subject and SANs', () => {
    writeFileSync(path.join(tmp, 'ca.pem'), ca.certPem);
    writeFileSync(path.join(tmp, 'node.pem'), cert);
    // -attime: the certificates are issued for NOW, which may differ from the machine's clock.
    expect(openssl(['verify', '-attime', String(NOW / 1000 + 60), '-CAfile', path.join(tmp, 'ca.pem'), path.join(tmp, 'node.pem')]).trim()).toBe(`${path.join(tmp, 'node.pem')}: OK`);
    const text = openssl(['x509', '-in', path.join(tmp, 'node.pem'), '-noout', '-text']);
    expect(text).toMatch(/Subject: CN ?= ?node1, OU ?= ?swarm-worker, O ?= ?clusterid0000000000000001/);
    expect(text).toContain('DNS:swarm-worker, DNS:node1');
    expect(text).toContain('TLS Web Server Authentication, TLS Web Client Authentication');
    expect(text).toContain('ecdsa-with-SHA256');
  });

  it('verifies its own certificates and reads the identity from them', () => {
    expect(ca.verify(new X509Certificate(cert).raw, 'clusterid0000000000000001', NOW)).toEqual({ nodeId: 'node1', role: 'worker', clusterId: 'clusterid0000000000000001' });
  });

  it('refuses certificates of another CA, another cluster, or out of their validity', () => {
    const other = ClusterCa.create('clusterid0000000000000001', NOW, new SeededRng(3));
    const foreign = other.issue({ nodeId: 'node1', role: 'manager', clusterId: 'clusterid0000000000000001' }, key.publicKeyPem, NOW, HOUR, new SeededRng(4));
    const der = (pem: string): Buffer => new X509Certificate(pem).raw;
    expect(() => ca.verify(der(foreign), 'clusterid0000000000000001', NOW)).toThrow("not issued by this cluster's CA");
    expect(() => ca.verify(der(cert), 'anothercluster', NOW)).toThrow('belongs to another cluster');
    expect(() => ca.verify(der(cert), 'clusterid0000000000000001', NOW + 91 * 24 * HOUR)).toThrow('expired');
    expect(() => ca.verify(Buffer.from('junk'), 'clusterid0000000000000001', NOW)).toThrow('cannot be parsed');
  });

  it('refuses a non-EC or unreadable public key', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => ca.issue({ nodeId: 'n', role: 'worker', clusterId: 'c' }, rsa, NOW, HOUR, new SeededRng(5))).toThrow('ECDSA P-256');
    expect(() => ca.issue({ nodeId: 'n', role: 'worker', clusterId: 'c' }, 'nope', NOW, HOUR, new SeededRng(5))).toThrow('not a valid PEM public key');
  });

  it('survives a round trip through its PEM (a restarted manager reloads it)', () => {
    const again = new ClusterCa(ca.certPem, ca.keyPem);
    const cert2 = again.issue({ nodeId: 'node2', role: 'manager', clusterId: 'clusterid0000000000000001' }, key.publicKeyPem, NOW, HOUR, new SeededRng(6));
    expect(ca.verify(new X509Certificate(cert2).raw, 'clusterid0000000000000001', NOW).role).toBe('manager');
  });

  it('gives TLSInfo as the Docker API shows it (base64 DER subject and public key)', () => {
    const info = ca.tlsInfo();
    expect(info.TrustRoot).toBe(ca.certPem);
    expect(Buffer.from(info.CertIssuerSubject, 'base64')[0]).toBe(0x30);
    expect(Buffer.from(info.CertIssuerPublicKey, 'base64').equals(new X509Certificate(ca.certPem).publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
  });

  it('lets only managers through requireManager, with swarmkit\'s message', () => {
    expect(() => requireManager({ nodeId: 'n', role: 'worker', clusterId: 'c' })).toThrow('Permission denied: remote certificate not part of OUs: [swarm-manager]');
    expect(() => requireManager({ nodeId: 'n', role: 'manager', clusterId: 'c' })).not.toThrow();
  });

  it('asks for renewal once a certificate is half way from issue to expiry', () => {
    // Issued at NOW for 90 days (backdated an hour, which does not count).
    expect(certificateNeedsRenewal(cert, NOW)).toBe(false);
    expect(certificateNeedsRenewal(cert, NOW + 45 * 24 * HOUR - 1000)).toBe(false);
    expect(certificateNeedsRenewal(cert, NOW + 45 * 24 * HOUR)).toBe(true);
    expect(certificateNeedsRenewal('not a certificate', NOW)).toBe(true);
  });
});
