/**
 * The oldest Node.js the bridge runs on, and the check that says so in one line; and what an older
 * Node of those it runs on leaves out (the proxy variables, read by Node's agents from 24.5).
 *
 * 22.13 is the first release where `node:sqlite` (the default store) loads without a flag. This
 * module imports nothing, so an entry point can run the check before anything loads `node:sqlite`
 * (on an older Node that import dies with a stack trace that does not name the cause).
 */

export const MINIMUM_NODE_VERSION = '22.13.0';

function parts(version: string): number[] {
  return version
    .replace(/^v/, '')
    .split('.')
    .map((part) => Number.parseInt(part, 10) || 0);
}

/** Whether `version` (as in `process.versions.node`, with or without a leading v) is new enough. */
export function isSupportedNodeVersion(version: string, minimum: string = MINIMUM_NODE_VERSION): boolean {
  const have = parts(version);
  const need = parts(minimum);
  for (let i = 0; i < need.length; i += 1) {
    const a = have[i] ?? 0;
    const b = need[i] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}

/** The one line an entry point prints before exiting on a Node that is too old. */
export function unsupportedNodeMessage(program: string, version: string): string {
  return (
    `${program}: needs Node.js ${MINIMUM_NODE_VERSION} or newer (node:sqlite), this is Node.js ${version.replace(/^v/, '')}; ` +
    'run it through npm (npm start, npm run sandbox, npm run cli) or with node_modules/.bin/node, which is Node 24'
  );
}

/** The first Node.js whose http/https agents take `proxyEnv` (outbound-http.ts); older ones ignore it. */
const PROXY_ENV_SINCE = '24.5.0';
const PROXY_VARIABLES = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy'];

/**
 * The proxy variables set in `env` that this Node.js (`version`, as `process.versions.node`) would
 * ignore, to be named in a warning at start; empty when it honours them or none is set.
 */
export function ignoredProxySettings(env: NodeJS.ProcessEnv, version: string): string[] {
  if (isSupportedNodeVersion(version, PROXY_ENV_SINCE)) return [];
  return PROXY_VARIABLES.filter((name) => (env[name] ?? '') !== '');
}
