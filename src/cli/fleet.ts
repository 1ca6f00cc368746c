/** `autossl fleet run | status | hook auth|cleanup` (README "Several nodes"). */
import { AutoSslError } from '../errors.js';
import { createAutoSsl } from '../engine.js';
import { config, type Values } from './config.js';
import { err, out } from './output.js';

export async function cmdFleet(positionals: string[], values: Values): Promise<number> {
  const [sub, phase] = positionals;
  const fleet = await import('../fleet/cli.js');
  const cfg = await config(values);
  if (sub === 'run') {
    await fleet.fleetRun(cfg, err);
    return 0;
  }
  if (sub === 'hook') {
    out(await fleet.fleetHook(cfg, phase ?? '', process.env));
    return 0;
  }
  if (sub === 'status') {
    const engine = await createAutoSsl(cfg);
    const report = await fleet.fleetReport(engine).finally(() => engine.close());
    if (!report)
      throw new AutoSslError('CONFIG_INVALID', 'This node is not in a fleet: the config has no fleet.node.', {
        hint: 'Add "fleet": { "node": "<name>" } (README "Several nodes").',
      });
    if (values.json === true) out(JSON.stringify(report, null, 2));
    else for (const line of fleet.formatFleetStatus(report)) out(line);
    return report.mismatches ? 1 : 0;
  }
  throw new AutoSslError('USAGE_INVALID', 'Usage: autossl fleet run | status [--json] | hook auth|cleanup', {
    hint: 'autossl fleet run on every node (README "Several nodes").',
  });
}
