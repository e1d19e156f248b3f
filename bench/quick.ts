// Temporary A/B harness (not committed).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetAccessTokenRequest } from '../src/gen/tokenbroker/v1/token_broker';
import { findH2load, runLoad, type LoadTarget } from './lib/h2load';
import { ManagedChild, stopAllChildren } from './lib/processes';
import { frame, grpcHeaders, rawUnaryOnce } from './lib/raw-grpc';
import { BenchStack, DRIVE, GATEWAY, GET_ACCESS_TOKEN_PATH, PHOTOS } from './lib/stack';
import { median } from './lib/stats';

async function main() {
  process.env.METADATA_SERVER_DETECTION = 'none';
  const steps: Array<() => Promise<void>> = [];
  const workDir = mkdtempSync(path.join(tmpdir(), 'quick-'));
  const stack = await BenchStack.start(workDir, path.resolve(__dirname, '..'), (s) => steps.push(s));
  const variants = (process.env.VARIANTS ?? 'base').split(',');
  const brokers: Record<string, Awaited<ReturnType<BenchStack['startBroker']>>> = {};
  for (const v of variants) {
    const env: Record<string, string> = {};
    for (const kv of (process.env[`ENV_${v}`] ?? '').split(';').filter(Boolean)) { const [k, val] = kv.split('='); env[k as string] = val as string; }
    brokers[v] = await stack.startBroker(v, { env, nodeArgs: (process.env[`ARGS_${v}`] ?? '').split(' ').filter(Boolean) });
  }
  const first = Object.values(brokers)[0]!;
  const gateway = stack.clientAs(first, stack.callerToken(GATEWAY));
  const user = (await gateway.exchangeCode({ authCode: stack.mintCode(stack.newUser()) })).userId;
  const photosToken = stack.callerToken(PHOTOS);
  const body = frame(GetAccessTokenRequest.encode({ userId: user, scopes: [DRIVE] }).finish());
  const auth = `Bearer ${photosToken}`;
  let frameBytes = 0;
  for (const b of Object.values(brokers)) { const r = await rawUnaryOnce(b.port, GET_ACCESS_TOKEN_PATH, body, grpcHeaders(auth)); frameBytes = r.data.length; }
  const { Buffer: _b } = await import('node:buffer'); void _b;
  const resp = (await rawUnaryOnce(first.port, GET_ACCESS_TOKEN_PATH, body, grpcHeaders(auth))).data;
  const { GetAccessTokenResponse } = await import('../src/gen/tokenbroker/v1/token_broker');
  const m = GetAccessTokenResponse.decode(resp.subarray(5));
  const echo = ManagedChild.start({ name: 'echo', command: process.execPath, args: [...(process.env.ECHO_ARGS ?? '').split(' ').filter(Boolean), '--require', 'tsx/cjs', 'bench/servers/echo-server.ts'], env: { BENCH_ECHO_RESPONSE: JSON.stringify({ accessToken: m.accessToken, expireTimeMs: m.expireTime!.getTime(), scopes: m.scopes }) }, stdout: 'pipe', cwd: path.resolve(__dirname, '..') });
  const line = await echo.waitForLine((l) => l.includes('listening'), 20000);
  const echoPort = (JSON.parse(line) as { port: number }).port;
  const h2 = findH2load()!;
  const t = (name: string, port: number, server: ManagedChild): LoadTarget => ({ name, port, path: GET_ACCESS_TOKEN_PATH, body, authorization: auth, frameBytes: [frameBytes, frameBytes], server });
  const shape = { requests: Number(process.env.N ?? 30000), clients: 4, streams: 32 };
  const et = t('echo', echoPort, echo);
  await runLoad(h2, et, { ...shape, requests: 10000 }, workDir);
  for (const [k, b] of Object.entries(brokers)) await runLoad(h2, t(k, b.port, b.child), { ...shape, requests: 10000 }, workDir);
  const ratios: Record<string, number[]> = {}; const cpu: Record<string, number[]> = { echo: [] };
  for (let i = 0; i < Number(process.env.ROUNDS ?? 3); i++) {
    const e = await runLoad(h2, et, shape, workDir); cpu.echo!.push(e.serverCpuUsPerCall);
    for (const [k, b] of Object.entries(brokers)) {
      const r = await runLoad(h2, t(k, b.port, b.child), shape, workDir);
      (ratios[k] ??= []).push(r.rps / e.rps); (cpu[k] ??= []).push(r.serverCpuUsPerCall);
      if (!r.valid) console.log('INVALID', k, r.problems);
    }
  }
  console.log('echo cpu us/call', median(cpu.echo!).toFixed(0));
  for (const k of Object.keys(brokers)) console.log(k, 'ratio', median(ratios[k]!).toFixed(3), 'cpu us/call', median(cpu[k]!).toFixed(0), 'ratios', ratios[k]!.map((x) => x.toFixed(2)).join(' '));
  gateway.close();
  await echo.stop();
  for (const b of Object.values(brokers)) await b.child.stop();
  for (const s of steps.reverse()) await s();
  await stopAllChildren();
}
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
