/**
 * The HTTPS edits, planned as splices on the files of a loaded NginxTree. Each edit is idempotent: planning it again
 * on its own output yields no splice. Nothing here writes a file; see transaction.ts for that.
 *
 * One door to the editor, split by concern:
 *  - vhost-edit.ts   the `vhost` hook's payload (what plugins fill) and how it is read back as statements;
 *  - locate.ts       which server blocks answer a name;
 *  - plan-https.ts   the HTTPS edit (TLS listens, certificate, the payload's statements), with
 *                    listen-mirror.ts, ensure.ts (what "already there" means), hsts.ts, host-maps.ts,
 *                    redirect.ts and tls-twin.ts;
 *  - http-01.ts      the HTTP-01 challenge planning, apart (as certbot keeps http_01.py apart);
 *  - plan-builder.ts splices grouped per file and verified.
 */
export { newServerTree, newVhostEdit, pathToken, statementsOf, vhostEditFor, type IdentityRule, type VhostEdit } from './vhost-edit.js';
export { ensureBlockEditable, installTargets, locateServers, servedCertificatePath, serverLabel, type LocateOptions } from './locate.js';
export { PlanBuilder, type FileEdit } from './plan-builder.js';
export { certificateKeyType, REPEATABLE_BY_KEY, type EnsureRules } from './ensure.js';
export { usesHttp2Directive } from './listen-mirror.js';
export { blockId } from './host-maps.js';
export { HSTS_HEADER_NAME } from './hsts.js';
export { copyStatement, tlsInstallProblem, tlsSiteStatements, TLS_INSTALL_HINT } from './tls-twin.js';
export { alreadyRedirects } from './redirect.js';
export { acmeLocation, planChallengeEdit, type ChallengePlan } from './http-01.js';
export { planHttpsEdit, type EditPlan, type HttpsOptions } from './plan-https.js';
