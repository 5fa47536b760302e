// npm run check:api -- fails when openapi.json, catalog.gen.json or the generated client are stale.
// Exports the backend's OpenAPI into a temporary folder, regenerates the client there and compares.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { frontendDir, pythonPath } from './python.mjs';

const work = mkdtempSync(join(tmpdir(), 'tunery-check-api-'));
const generator = join(frontendDir, 'node_modules', '.bin', 'openapi-typescript');
const stale = [];
try {
  execFileSync(pythonPath(), [join(frontendDir, 'scripts', 'export_openapi.py'), '--out', work], { stdio: 'inherit' });
  execFileSync(generator, [join(work, 'openapi.json'), '-o', join(work, 'schema.gen.ts')], { stdio: 'pipe' });
  const pairs = [
    ['openapi.json', join(work, 'openapi.json')],
    ['src/api/catalog.gen.json', join(work, 'src', 'api', 'catalog.gen.json')],
    ['src/api/schema.gen.ts', join(work, 'schema.gen.ts')],
  ];
  for (const [committed, fresh] of pairs) {
    let current = '';
    try {
      current = readFileSync(join(frontendDir, committed), 'utf8');
    } catch {
      current = '';
    }
    if (current !== readFileSync(fresh, 'utf8')) stale.push(committed);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
if (stale.length) {
  console.error(`stale API files: ${stale.join(', ')} -- run \`npm run export:api\` and commit the result`);
  process.exit(1);
}
console.log('API client is up to date with the backend');
