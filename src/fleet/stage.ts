/**
 * The pipeline's side of a fleet: under a lineage's order lock, a lineage another node published is written here
 * first (then reused: no second order), and a lineage this node obtained, reused or renewed is published before
 * the lock goes. The deploy run of a renewal (certbot's deploy hook) publishes too: every node installs it.
 */
import type { DomainContext } from '../pipeline/context.js';
import { STAGE } from '../pipeline/hooks.js';
import type { Plugin } from '../pipeline/plugin.js';
import { fleetOf, fleetStore } from './config.js';
import { localSerial, publishLineage, writeLineage, type LineageFiles } from './lineage.js';

const sameNames = (a: readonly string[], b: readonly string[]): boolean => [...a].sort().join(',') === [...b].sort().join(',');

/** Writes the published lineage of the plan's certificate here when it is another (newer) one than this node's. */
export async function adoptFromFleet(ctx: DomainContext): Promise<void> {
  const settings = fleetOf(ctx.services.config);
  if (!settings || ctx.dryRun) return;
  const fleet = fleetStore(ctx.services.state());
  const row = await fleet.lineage(ctx.plan.certName);
  if (!row || !sameNames(row.names, ctx.plan.names)) return;
  if ((await localSerial(ctx.services.issuer, row.id)) === row.serial) return;
  const here = await ctx.services.issuer.find(row.id).catch(() => null);
  if (here && here.notAfter.getTime() >= row.notAfter) return;
  await writeLineage(ctx.services.config, ctx.services.issuer, settings, row);
  ctx.needsReload = true;
  ctx.emit({
    stage: 'issue',
    plugin: 'fleet',
    status: 'info',
    message: `certificate ${row.id} (serial ${row.serial}) was obtained by node ${row.node}: written here from the store`,
  });
}

/** Publishes this node's lineage when the store does not hold that serial. */
export async function publishToFleet(ctx: DomainContext, files: LineageFiles): Promise<void> {
  const settings = fleetOf(ctx.services.config);
  if (!settings || ctx.dryRun) return;
  const fleet = fleetStore(ctx.services.state());
  const serial = await localSerial(ctx.services.issuer, files.name);
  const stored = (await fleet.lineageSerials()).find((l) => l.id === files.name);
  if (stored && stored.serial === serial) return;
  const row = await publishLineage(fleet, settings, files);
  ctx.emit({ stage: 'issue', plugin: 'fleet', status: 'info', message: `certificate ${row.id} (serial ${row.serial}) published to the fleet` });
}

export const fleetPublishPlugin: Plugin = {
  name: 'fleet-publish',
  apply(hooks) {
    // a renewal's deploy run (certbot renewed the lineage on this node): every node installs the new certificate
    hooks.vhost.tapPromise({ name: 'fleet-publish', stage: STAGE.FIRST }, async (edit, ctx) => {
      if (ctx.mode === 'deploy' && ctx.lineage) await publishToFleet(ctx, ctx.lineage);
      return edit;
    });
  },
};
