/**
 * compose.yaml as far as it can be checked without a Docker engine: it parses, and every reference
 * it makes holds — the Dockerfile it builds, the paths it mounts against the image's VOLUME and
 * WORKDIR, the secret file and where the bridge is told to read it, the settings it passes
 * (ones the bridge knows, from example.env), the ports against EXPOSE, the profiles, and that the
 * key never reaches git or the build context.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

// js-yaml is a devDependency only: the bridge itself reads no YAML.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- js-yaml 3 has no type declarations here; require keeps its one use typed
const yaml = require('js-yaml') as { safeLoad(text: string): unknown };

const ROOT = path.join(__dirname, '../..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

interface Service {
  build?: string;
  image?: string;
  profiles?: string[];
  env_file?: string;
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  secrets?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}
interface Compose {
  services: Record<string, Service>;
  secrets: Record<string, { file: string }>;
  volumes: Record<string, unknown>;
}

const compose = yaml.safeLoad(read('compose.yaml')) as Compose;
const dockerfile = read('Dockerfile');
const exampleEnv = read('example.env');
const exampleNames = new Set([...exampleEnv.matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]));
const bridges = Object.entries(compose.services).filter(([, service]) => service.build);

/** The last stage's instruction values, e.g. `WORKDIR` → ['/app']. */
function runtimeInstruction(name: string): string[] {
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  return [...runtime.matchAll(new RegExp(`^${name}\\s+(.+)$`, 'gm'))].map((m) => m[1]!.trim());
}

describe('compose.yaml', () => {
  test('two profiles: sqlite with one bridge, postgres with PostgreSQL and two bridges', () => {
    const byProfile = (profile: string) =>
      Object.entries(compose.services)
        .filter(([, service]) => service.profiles?.includes(profile))
        .map(([name, service]) => (service.build ? `bridge:${name}` : service.image));
    expect(byProfile('sqlite')).toEqual(['bridge:bridge']);
    expect(byProfile('postgres')).toEqual([expect.stringMatching(/^postgres:\d+/), 'bridge:bridge-1', 'bridge:bridge-2']);
    for (const service of Object.values(compose.services)) expect(service.profiles).toHaveLength(1);
  });

  test('every bridge builds the Dockerfile here and reads .env', () => {
    expect(bridges).toHaveLength(3);
    for (const [, service] of bridges) {
      expect(existsSync(path.join(ROOT, service.build!, 'Dockerfile'))).toBe(true);
      expect(service.env_file).toBe('.env');
    }
    expect(existsSync(path.join(ROOT, 'example.env'))).toBe(true);
  });

  test('the private key is a secret, and the bridge reads it where Compose mounts it', () => {
    expect(Object.keys(compose.secrets)).toEqual(['vonage_private_key']);
    // The same file example.env names, relative to the project directory.
    const keyFile = compose.secrets.vonage_private_key!.file;
    expect(exampleEnv).toMatch(new RegExp(`^VONAGE_PRIVATE_KEY=${keyFile.replace(/\./g, '\\.')}$`, 'm'));
    for (const [, service] of bridges) {
      expect(service.secrets).toEqual(['vonage_private_key']);
      expect(service.environment!.VONAGE_PRIVATE_KEY).toBe('/run/secrets/vonage_private_key');
    }
  });

  test('settings passed to the bridges are ones example.env documents; interpolated ones too', () => {
    for (const [, service] of bridges) {
      for (const name of Object.keys(service.environment!)) expect(exampleNames).toContain(name);
    }
    const interpolated = [...read('compose.yaml').matchAll(/\$\{([A-Z0-9_]+)/g)].map((m) => m[1]);
    expect(interpolated.length).toBeGreaterThan(0);
    for (const name of interpolated) expect(exampleNames).toContain(name);
  });

  test("data lives on named volumes at the image's VOLUME; SQLite and the media cache inside it", () => {
    const [volume] = runtimeInstruction('VOLUME').map((v) => JSON.parse(v) as string[]);
    expect(volume).toEqual(['/app/data']);
    expect(runtimeInstruction('WORKDIR')).toEqual(['/app']);
    for (const [, service] of bridges) {
      const mounts = service.volumes!.map((entry) => entry.split(':'));
      expect(mounts).toEqual([[expect.any(String), '/app/data']]);
      expect(Object.keys(compose.volumes)).toContain(mounts[0]![0]);
      expect(service.environment!.MEDIA_CACHE_DIR!.startsWith('/app/data/')).toBe(true);
    }
    expect(compose.services.bridge!.environment!.DATABASE_URL).toBe('sqlite:/app/data/bridge.db');
    const postgresVolume = compose.services.postgres!.volumes![0]!.split(':')[0]!;
    expect(Object.keys(compose.volumes)).toContain(postgresVolume);
  });

  test("ports: each bridge listens on the image's EXPOSEd port, on its own host port", () => {
    const exposed = runtimeInstruction('EXPOSE');
    const hostPorts = new Set<string>();
    for (const [, service] of bridges) {
      expect(service.environment!.PORT).toBe(exposed[0]);
      expect(service.ports).toHaveLength(1);
      const [host, container] = service.ports![0]!.split(/:(?=\d+$)/);
      expect(container).toBe(exposed[0]);
      hostPorts.add(host!);
    }
    expect(hostPorts.size).toBe(3);
  });

  test('the PostgreSQL bridges share one database, reached by service name, once it is healthy', () => {
    const postgres = compose.services.postgres!;
    expect(postgres.healthcheck?.test).toContain('pg_isready');
    const urls = ['bridge-1', 'bridge-2'].map((name) => compose.services[name]!.environment!.DATABASE_URL!);
    expect(new Set(urls).size).toBe(1);
    const url = new URL(urls[0]!.replace('${POSTGRES_PASSWORD:-}', 'password'));
    expect(url.protocol).toBe('postgres:');
    expect(url.hostname).toBe('postgres');
    expect(url.username).toBe(postgres.environment!.POSTGRES_USER);
    expect(url.pathname).toBe(`/${postgres.environment!.POSTGRES_DB}`);
    expect(urls[0]).toContain('${POSTGRES_PASSWORD');
    expect(postgres.environment!.POSTGRES_PASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD/);
    for (const name of ['bridge-1', 'bridge-2']) {
      expect(compose.services[name]!.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    }
  });

  test('the key and .env stay out of git and out of the image build context', () => {
    const ignored = (file: string) => read(file).split('\n').map((line) => line.trim());
    for (const pattern of ['private.key', '*.pem', '.env']) {
      expect(ignored('.gitignore')).toContain(pattern);
      expect(ignored('.dockerignore')).toContain(pattern);
    }
  });
});
