import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { issuedSecrets } from './log-capture';

const run = promisify(execFile);

/** A certificate and its key, as PEM files and their content. */
export interface IssuedCert {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
}

/**
 * A throwaway certificate authority made with the openssl command (P-256
 * keys, valid one day) in a temporary folder: the CA, and leaf
 * certificates with the subject alternative names a test asks for.
 */
export class TestPki {
  private serial = 0;

  private constructor(
    readonly dir: string,
    readonly name: string,
  ) {}

  get caFile(): string {
    return path.join(this.dir, `${this.name}-ca.pem`);
  }

  get ca(): Buffer {
    return readFileSync(this.caFile);
  }

  static async create(name: string): Promise<TestPki> {
    const pki = new TestPki(mkdtempSync(path.join(tmpdir(), `tokenbroker-pki-${name}-`)), name);
    await run('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-keyout', path.join(pki.dir, `${name}-ca.key`), '-out', pki.caFile, '-subj', `/CN=${name} test CA`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign',
    ]);
    issuedSecrets.add(readFileSync(path.join(pki.dir, `${name}-ca.key`), 'utf8').split('\n')[1] ?? '');
    return pki;
  }

  /**
   * Issues a leaf certificate. `subjectAltName` is openssl's syntax
   * (`URI:spiffe://...,DNS:host`), or undefined for a certificate with a CN only.
   */
  async issue(commonName: string, subjectAltName: string | undefined, usage: 'serverAuth' | 'clientAuth'): Promise<IssuedCert> {
    this.serial += 1;
    const base = path.join(this.dir, `leaf-${this.serial}`);
    const ext = [`extendedKeyUsage=${usage}`, 'basicConstraints=CA:FALSE', ...(subjectAltName ? [`subjectAltName=${subjectAltName}`] : [])];
    writeFileSync(`${base}.cnf`, `${ext.join('\n')}\n`);
    await run('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${commonName}`]);
    await run('openssl', [
      'x509', '-req', '-in', `${base}.csr`, '-CA', this.caFile, '-CAkey', path.join(this.dir, `${this.name}-ca.key`),
      '-set_serial', String(1000 + this.serial), '-days', '1', '-out', `${base}.pem`, '-extfile', `${base}.cnf`,
    ]);
    const issued = { certFile: `${base}.pem`, keyFile: `${base}.key`, cert: readFileSync(`${base}.pem`), key: readFileSync(`${base}.key`) };
    // Private keys count as secrets for the suite's leak scan (their base64 body's first line).
    issuedSecrets.add(issued.key.toString('utf8').split('\n')[1] ?? '');
    return issued;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
