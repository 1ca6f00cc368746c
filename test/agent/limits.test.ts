/**
 * The agent's limits against clients that do not play along (an in-process agent on a private nginx tree, small
 * limits so each runs in a second): an unsigned request is answered before its body is read and its connection
 * closed; a signed-looking one that stalls its body is cut at the body timeout; a silent connection at the headers
 * timeout; a source over its connection cap is closed at accept while others are served; bodies being received
 * beyond the in-flight budget are refused (503 AGENT_BUSY), not buffered.
 */
import fs from 'node:fs';
import type http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { rfc3339, sign } from '../../src/agent/auth.js';
import { addressKey } from '../../src/agent/limits.js';
import { startAgent, type RunningAgent } from '../../src/agent/server.js';
import { makeTree } from '../helpers/nginx-fixture.js';

const TOKEN = 'd'.repeat(64);
let agent: RunningAgent | null = null;
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await agent?.close();
  agent = null;
});

async function start(limits: Record<string, number>): Promise<RunningAgent> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-limits-'));
  const tree = await makeTree('server {\n    listen 80;\n    server_name lim.test;\n    root /var/www/lim;\n}\n');
  fs.writeFileSync(path.join(dir, 'tokens'), `${TOKEN}\n`, { mode: 0o600 });
  const raw = {
    nginx: { config: tree.main, extraArgs: ['-p', tree.dir, '-e', path.join(tree.dir, 'error.log')], reloadCommand: ['true'] },
    stateDir: path.join(dir, 'state'),
    certbot: { configDir: path.join(dir, 'le'), workDir: path.join(dir, 'work'), logsDir: path.join(dir, 'logs') },
    agent: { tokensFile: path.join(dir, 'tokens'), logLevel: 'silent', limits },
  };
  agent = await startAgent(validateConfig(raw, path.join(dir, 'x.json'), dir), { port: 0 });
  return agent;
}

/** A raw connection from `from` (any 127/8 address is loopback): everything it receives, and when it closed. */
function connect(port: number, from = '127.0.0.1'): Promise<{ socket: net.Socket; received: () => string; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: from });
    sockets.push(socket);
    let text = '';
    const t0 = Date.now();
    const closed = new Promise<number>((r) => socket.once('close', () => r(Date.now() - t0)));
    socket.on('data', (d) => (text += d.toString('latin1')));
    socket.on('error', () => {});
    socket.once('connect', () => resolve({ socket, received: () => text, closed }));
    socket.once('error', reject);
  });
}

/**
 * A wait for the agent's body reader to hold every byte a raw connection sent: the request's body is being read (a
 * data listener) and nothing sent is left unread, so those bytes count against agent.limits.bodyBytesInFlight. A body
 * refused meanwhile has no reader left, and the wait fails.
 */
function bodyHeld(a: RunningAgent): (client: net.Socket) => Promise<void> {
  const requests = new Map<number, http.IncomingMessage>();
  a.app.server.on('request', (req: http.IncomingMessage) => requests.set(req.socket.remotePort!, req));
  return async (client) => {
    const held = (): boolean => {
      const req = requests.get(client.localPort!);
      return !!req && req.listenerCount('data') > 0 && req.readableLength === 0 && req.socket.bytesRead >= client.bytesWritten;
    };
    await expect.poll(held, { timeout: 5000, interval: 20, message: 'the agent reads the whole body sent so far' }).toBe(true);
  };
}

async function signedStatus(from = '127.0.0.1'): Promise<{ status: number; ms: number }> {
  const body = JSON.stringify({ domain: 'lim.test' });
  const ts = rfc3339();
  const t0 = Date.now();
  const c = await connect(agent!.port, from);
  c.socket.write(
    `POST /ssl/status HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nX-Timestamp: ${ts}\r\nX-Signature: ${sign(TOKEN, ts, 'POST', '/ssl/status', body)}\r\nConnection: close\r\n\r\n${body}`,
  );
  await c.closed;
  return { status: Number(/^HTTP\/1\.1 (\d+)/.exec(c.received())?.[1] ?? 0), ms: Date.now() - t0 };
}

/** How many Sockets node made of accepted connections from `from` (every one reaches the server's emit). */
function socketsMade(a: RunningAgent, from: string): () => number {
  let n = 0;
  const server = a.app.server as unknown as { emit: (event: string | symbol, ...args: unknown[]) => boolean };
  const emit = server.emit.bind(server);
  server.emit = (event, ...args) => {
    if (event === 'connection' && (args[0] as net.Socket).remoteAddress === from) n++;
    return emit(event, ...args);
  };
  return () => n;
}

const HEAD = (extra = ''): string => `POST /ssl/status HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n${extra}\r\n`;

describe('agent limits', () => {
  it('an unsigned request is answered 401 before its body arrives; the rest is dropped, and a stalled one cut at the timeouts', async () => {
    const a = await start({ headersTimeoutMs: 400, bodyTimeoutMs: 400 });
    const c = await connect(a.port);
    c.socket.write(HEAD() + 'x'.repeat(1000));
    await expect.poll(() => c.received(), { timeout: 2000 }).toMatch(/^HTTP\/1\.1 401 [\s\S]*Missing X-Timestamp/);
    // 199,000 bytes of the body never came: node closes the connection at its request timeout (headers + body)
    expect(await c.closed).toBeLessThan(3000);
    // a stale timestamp or a malformed signature: the same, before the body
    for (const extra of [
      `X-Timestamp: 2020-01-01T00:00:00+00:00\r\nX-Signature: ${'a'.repeat(64)}\r\n`,
      `X-Timestamp: ${rfc3339()}\r\nX-Signature: nothex\r\n`,
    ]) {
      const d = await connect(a.port);
      d.socket.write(HEAD(extra) + 'x'.repeat(1000));
      await expect.poll(() => d.received(), { timeout: 2000 }).toMatch(/^HTTP\/1\.1 401 /);
    }
    // an unknown route: 404 without reading the body either
    const e = await connect(a.port);
    e.socket.write(HEAD().replace('/ssl/status', '/nothing') + 'x');
    await expect.poll(() => e.received(), { timeout: 2000 }).toMatch(/^HTTP\/1\.1 404 /);
    // a client that sends its whole body after the refusal keeps its connection (kept alive, the body dropped)
    const f = await connect(a.port);
    f.socket.write(HEAD().replace('200000', '10') + '0123456789');
    await expect.poll(() => f.received(), { timeout: 2000 }).toMatch(/^HTTP\/1\.1 401 /);
    f.socket.write(HEAD().replace('200000', '2') + '{}');
    await expect.poll(() => f.received().match(/HTTP\/1\.1 401/g)?.length, { timeout: 2000 }).toBe(2);
  });

  it('a well-formed but forged signature whose body stalls is cut at the body timeout (408), connection closed', async () => {
    const a = await start({ bodyTimeoutMs: 600 });
    const c = await connect(a.port);
    c.socket.write(HEAD(`X-Timestamp: ${rfc3339()}\r\nX-Signature: ${'a'.repeat(64)}\r\n`) + 'x'.repeat(1000));
    const ms = await c.closed;
    expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(ms).toBeGreaterThanOrEqual(500);
    expect(ms).toBeLessThan(3000);
  });

  it('a connection that sends nothing is closed at the headers timeout', async () => {
    const a = await start({ headersTimeoutMs: 500 });
    const c = await connect(a.port);
    const ms = await c.closed;
    expect(ms).toBeLessThan(3000);
  });

  it('a source over its connection cap is closed at accept, before node makes a Socket of it; another source is served meanwhile', async () => {
    const a = await start({ connectionsPerAddress: 3 });
    const made = socketsMade(a, '127.0.0.2');
    const held = await Promise.all([1, 2, 3].map(() => connect(a.port, '127.0.0.2')));
    const fourth = await connect(a.port, '127.0.0.2');
    expect(await fourth.closed).toBeLessThan(1000);
    expect(fourth.received()).toBe('');
    // closed as a bare handle: no Socket made of it, nothing for the collector (test/agent/flood.test.ts)
    expect(made()).toBe(3);
    expect((await signedStatus('127.0.0.1')).status).toBe(200);
    // the first three were not touched
    for (const h of held) expect(h.socket.destroyed).toBe(false);
  });

  it('when all connections are open, a new source is closed at accept but the panel (it signed a request lately) still gets in', async () => {
    const a = await start({ connections: 4, connectionsPerAddress: 10 });
    expect((await signedStatus('127.0.0.1')).status).toBe(200);
    const held = await Promise.all([1, 2, 3, 4].map(() => connect(a.port, '127.0.0.4')));
    const made = socketsMade(a, '127.0.0.5');
    const stranger = await connect(a.port, '127.0.0.5');
    expect(await stranger.closed).toBeLessThan(1000);
    expect(made()).toBe(0);
    expect((await signedStatus('127.0.0.1')).status).toBe(200);
    for (const h of held) expect(h.socket.destroyed).toBe(false);
  });

  it('bodies being received beyond agent.limits.bodyBytesInFlight are refused (503 AGENT_BUSY), not buffered', async () => {
    const a = await start({ bodyBytesInFlight: 4096, bodyTimeoutMs: 5000 });
    const held = bodyHeld(a);
    const forged = HEAD(`X-Timestamp: ${rfc3339()}\r\nX-Signature: ${'a'.repeat(64)}\r\n`);
    const first = await connect(a.port, '127.0.0.3');
    first.socket.write(forged + 'x'.repeat(3000));
    await held(first.socket);
    const second = await connect(a.port, '127.0.0.3');
    second.socket.write(forged + 'x'.repeat(3000));
    await second.closed;
    expect(second.received()).toMatch(/^HTTP\/1\.1 503 /);
    expect(second.received()).toContain('AGENT_BUSY');
    // a signed call with a small body still fits
    first.socket.destroy();
    await expect.poll(async () => (await signedStatus()).status, { timeout: 3000 }).toBe(200);
    // the first client went mid-body: its bytes left the budget at once (not at the body timeout), so a third fits
    const third = await connect(a.port, '127.0.0.3');
    third.socket.write(forged + 'x'.repeat(3000));
    await held(third.socket);
    expect(third.received()).toBe('');
  });

  it('counts an IPv6 client by its /64 (one host owns all of it)', () => {
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe(addressKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'));
    expect(addressKey('2001:db8:1:2::1')).not.toBe(addressKey('2001:db8:1:3::1'));
    expect(addressKey('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
  });
});

describe('the systemd unit', () => {
  it('gives the agent more descriptors than its connection cap can take (LimitNOFILE)', async () => {
    const { DEFAULT_CONFIG } = await import('../../src/config/schema.js');
    const { agentNoFileLimit } = await import('../../src/agent/limits.js');
    const unit = fs.readFileSync(path.resolve(import.meta.dirname, '../../systemd/autossl-agent.service'), 'utf8');
    const nofile = Number(/^LimitNOFILE=(\d+)$/m.exec(unit)?.[1]);
    expect(nofile).toBe(agentNoFileLimit(DEFAULT_CONFIG.agent.limits.connections));
    expect(nofile).toBeGreaterThan(DEFAULT_CONFIG.agent.limits.connections * 2);
  });
});
