// npm run export:api -- writes openapi.json and src/api/catalog.gen.json from the backend, then regenerates the client.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { frontendDir, pythonPath } from './python.mjs';

execFileSync(pythonPath(), [join(frontendDir, 'scripts', 'export_openapi.py')], { stdio: 'inherit' });
execFileSync('npm', ['run', '--silent', 'gen:api'], { cwd: frontendDir, stdio: 'inherit' });
