// The Python that has the `tunery` package: $TUNERY_PYTHON, else the repository's .venv, else python3.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const frontendDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export function pythonPath() {
  if (process.env.TUNERY_PYTHON) return process.env.TUNERY_PYTHON;
  const venv = join(frontendDir, '..', '.venv', 'bin', 'python');
  return existsSync(venv) ? venv : 'python3';
}
