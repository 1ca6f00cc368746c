/** `autossl agent` (the signed HTTP API, in the foreground) and `autossl agent call` (one signed request to it). */
import fs from 'node:fs';
import { AutoSslError } from '../errors.js';
import { config, type Values } from './config.js';
import { err, out } from './output.js';

export async function cmdAgent(positionals: string[], values: Values): Promise<number> {
  if (positionals.length)
    throw new AutoSslError(
      'USAGE_INVALID',
      `Usage: autossl agent, or autossl agent call METHOD PATH [BODY]; got ${JSON.stringify(positionals[0]).slice(0, 40)}.`,
    );
  const { startAgent } = await import('../agent/server.js');
  const agent = await startAgent(await config(values), { loadConfig: () => config(values) });
  err(`autossl agent listening on ${agent.url}`);
  // SIGHUP re-reads the tokens and the config; node's default for it would end the agent (and systemd's
  // Restart=on-failure would leave it down: a HUP is a clean exit to it)
  process.on('SIGHUP', () => {
    err('SIGHUP: re-reading the tokens file and the config');
    void agent.reload().catch((error: unknown) => err(`SIGHUP: ${(error as Error).message}`));
  });
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      err(`${signal}: stopping (running jobs get ${agent.ctx.config.agent.stopTimeoutMs / 1000} s to finish)`);
      void agent.close().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

export async function cmdAgentCall(positionals: string[], values: Values): Promise<number> {
  const [method, target, body = '', ...extra] = positionals;
  if (!method || !target || extra.length || !/^(GET|POST)$/i.test(method) || !target.startsWith('/')) {
    throw new AutoSslError('USAGE_INVALID', 'Usage: autossl agent call GET|POST /path [JSON-BODY] [--url URL] [--token-file FILE]', {
      hint: `autossl agent call POST /ssl/status '{"domain":"example.com"}'`,
    });
  }
  if (body) {
    try {
      JSON.parse(body);
    } catch {
      throw new AutoSslError('USAGE_INVALID', 'The body is not valid JSON.', { hint: `Quote it for the shell: '{"domain":"example.com"}'` });
    }
  }
  const cfg = await config(values);
  const { loadTokens } = await import('../agent/auth.js');
  const { call } = await import('../agent/client.js');
  const tokenFile = typeof values['token-file'] === 'string' ? values['token-file'] : cfg.agent.tokensFile;
  const token = loadTokens(tokenFile).tokens[0]!.key;
  const listen = cfg.agent.listen.replace(/^0\.0\.0\.0:/, '127.0.0.1:');
  const url = typeof values.url === 'string' ? values.url : `${cfg.agent.tls ? 'https' : 'http'}://${listen}`;
  const ca = cfg.agent.tls && !values.url ? fs.readFileSync(cfg.agent.tls.cert) : undefined;
  const res = await call(method, target, body, { url, token, ca, insecure: values.insecure === true });
  out(res.body);
  if (res.status < 200 || res.status >= 300) err(`HTTP ${res.status}`);
  return res.status >= 200 && res.status < 300 ? 0 : 1;
}
