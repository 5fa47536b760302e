// End-to-end test of the dashboard against the real backend, in Debian's chromium (playwright-core).
//
//   npm run build && npm run e2e
//
// By default it starts its own backend in e2e/.work/ (fresh TUNERY_HOME, SQLite, `tunery server` serving the
// built dashboard, and one CPU worker) and a user + a tiny local model (e2e/backend_setup.py).
// To test a running server instead (e.g. `tunery up`), set E2E_BASE_URL, E2E_EMAIL, E2E_PASSWORD and
// E2E_MODEL_PATH (a model folder the server may register). E2E_SKIP_TRAINING=1 skips the steps that need a
// worker. Screenshots of every screen go to e2e/screenshots/ (1280 px and 390 px wide).
// Each step reports ok/FAIL; later steps still run when they can. Exit code 1 if any step failed.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { pythonPath } from '../scripts/python.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const SHOTS = join(HERE, 'screenshots');
const WORK = join(HERE, '.work');
const DEMO = process.env.E2E_DEMO_DATA ?? resolve(HERE, '../../../shared/data/llamafactory-demo');
const EMAIL = process.env.E2E_EMAIL ?? 'e2e@example.com';
const PASSWORD = process.env.E2E_PASSWORD ?? 'e2e-password-123';
const SKIP_TRAINING = process.env.E2E_SKIP_TRAINING === '1';
const CHROMIUM = process.env.E2E_CHROMIUM ?? '/usr/bin/chromium';
const STAMP = Date.now().toString(36);
const TERMINAL = ['succeeded', 'failed', 'cancelled'];
// exports write GGUF too when the engine has its GGUF writer (E2E_EXPORT_GGUF=0|1 decides otherwise)
const GGUF = process.env.E2E_EXPORT_GGUF ? process.env.E2E_EXPORT_GGUF === '1' : (() => {
  const folder = resolve(HERE, '../../backend/tunery/engine/export');
  return existsSync(folder) && readdirSync(folder).some((name) => /^gguf.*\.py$/.test(name));
})();

const results = [];
const children = [];

function log(message) {
  process.stdout.write(`${message}\n`);
}

async function step(name, body, { critical = false } = {}) {
  const started = Date.now();
  try {
    await body();
    results.push({ name, ok: true });
    log(`  ok    ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    return true;
  } catch (error) {
    results.push({ name, ok: false, error });
    log(`  FAIL  ${name}: ${String(error?.message ?? error).split('\n').slice(0, 6).join('\n        ')}`);
    if (critical) throw new Error(`stopping: "${name}" is needed by every later step`);
    return false;
  }
}

function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
    server.on('error', fail);
  });
}

function start(name, args, env) {
  const child = spawn(args[0], args.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = [];
  child.stdout.on('data', (d) => out.push(d.toString()));
  child.stderr.on('data', (d) => out.push(d.toString()));
  children.push({ name, child, out });
  return child;
}

async function waitFor(check, what, timeoutMs = 60_000, everyMs = 500) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (${last.message})` : ''}`);
}

async function ownBackend() {
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  const home = join(WORK, 'home');
  const env = { TUNERY_HOME: home, TUNERY_SECRET_KEY: `e2e-${STAMP}`, TOKENIZERS_PARALLELISM: 'false' };
  const python = pythonPath();
  const setup = spawnSync(python, [join(HERE, 'backend_setup.py'), EMAIL, PASSWORD], { env: { ...process.env, ...env }, encoding: 'utf8' });
  if (setup.status !== 0) throw new Error(`backend_setup.py failed:\n${setup.stderr}`);
  const modelPath = setup.stdout.trim().split('\n').pop();
  const port = await freePort();
  start('server', [python, '-m', 'tunery.server.cli_processes', 'server', '--port', String(port)], env);
  const base = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${base}/api/health`)).ok, 'the API to answer', 90_000);
  if (!SKIP_TRAINING) {
    start('worker', [python, '-m', 'tunery.server.cli_processes', 'worker', '--name', `e2e-${STAMP}`, '--concurrency', '1'], { ...env, TUNERY_MIGRATE_ON_START: '0' });
  }
  return { base, modelPath };
}

function stopChildren() {
  for (const { child } of children.reverse()) if (child.exitCode === null) child.kill('SIGTERM');
}

async function main() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  rmSync(SHOTS, { recursive: true, force: true });
  mkdirSync(SHOTS, { recursive: true });
  let base = process.env.E2E_BASE_URL;
  let modelPath = process.env.E2E_MODEL_PATH;
  if (!base) {
    log('starting a backend in e2e/.work …');
    ({ base, modelPath } = await ownBackend());
  }
  if (!modelPath) throw new Error('set E2E_MODEL_PATH to a model folder the server may register');
  log(`testing ${base}`);

  // data files: a clean demo set and one with broken rows
  mkdirSync(WORK, { recursive: true });
  const identity = join(WORK, 'identity.json');
  copyFileSync(join(DEMO, 'identity.json'), identity);
  const broken = join(WORK, 'broken.json');
  writeFileSync(
    broken,
    JSON.stringify([
      { instruction: 'Say hi', input: '', output: 'Hi!' },
      { instruction: 'No answer here', input: '' },
      { instruction: 42, input: '', output: 'numbers are not text' },
      { instruction: 'Fine', input: '', output: 'Fine.' },
    ]),
  );

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.setDefaultTimeout(20_000);
  // full-page shots grow the viewport instead of stitching, so the fixed header and menu stay in place
  const shot = async (name, full = true) => {
    const size = page.viewportSize();
    const height = full ? await page.evaluate(() => document.documentElement.scrollHeight) : size.height;
    if (height > size.height) await page.setViewportSize({ width: size.width, height: Math.min(height, 4000) });
    await page.screenshot({ path: join(SHOTS, `${name}.png`) });
    if (height > size.height) await page.setViewportSize(size);
  };
  const go = (path) => page.goto(`${base}${path}`);
  const nav = async (testId) => {
    await page.getByTestId(testId).first().click();
    await page.waitForLoadState('networkidle').catch(() => {});
  };
  const pickOption = async (testId, label) => {
    await page.getByTestId(testId).click();
    await page.getByRole('option', { name: label, exact: true }).click();
  };
  const token = () => page.evaluate(() => localStorage.getItem('tunery.token'));
  const apiGet = async (path) => {
    const answer = await page.request.get(`${base}${path}`, { headers: { Authorization: `Bearer ${await token()}` } });
    if (!answer.ok()) throw new Error(`GET ${path}: ${answer.status()} ${await answer.text()}`);
    return answer.json();
  };

  const modelName = `tiny-${STAMP}`;
  const datasetName = `identity-${STAMP}`;
  let mainRun = null;
  let datasetOk = false;
  let evalFt = null;
  let evalBase = null;
  let exportJob = null;

  try {
    await step(
      'sign in',
      async () => {
        await go('/');
        await page.getByTestId('signin-email').waitFor();
        await shot('01-sign-in');
        await page.getByTestId('signin-email').fill(EMAIL);
        await page.getByTestId('signin-password').fill('wrong password');
        await page.getByTestId('signin-submit').click();
        await page.getByTestId('signin-error').waitFor();
        await page.getByTestId('signin-password').fill(PASSWORD);
        await page.getByTestId('signin-submit').click();
        await page.getByTestId('nav-overview').waitFor();
      },
      { critical: true },
    );

    await step(
      'project exists (created on first use)',
      async () => {
        if (await page.getByTestId('project-name').isVisible().catch(() => false)) {
          await shot('02-create-project');
          await page.getByTestId('project-name').fill(`E2E ${STAMP}`);
          await page.getByTestId('project-create').click();
        }
        await page.getByTestId('overview-new-run').waitFor();
      },
      { critical: true },
    );

    await step('settings: create an API key (shown once), then revoke it', async () => {
      await nav('nav-settings');
      await page.getByTestId('key-name').fill(`e2e key ${STAMP}`);
      await page.getByTestId('key-create').click();
      const key = (await page.getByTestId('new-key').textContent())?.trim() ?? '';
      if (!/^tny_/.test(key)) throw new Error(`unexpected key: ${key}`);
      await shot('03-settings-key-created', false);
      const me = await page.request.get(`${base}/api/auth/me`, { headers: { Authorization: `Bearer ${key}` } });
      if (!me.ok()) throw new Error(`the new key does not work: ${me.status()}`);
      await page.getByTestId('key-done').click();
      const row = page.getByTestId('keys-table').getByRole('row', { name: new RegExp(`e2e key ${STAMP}`) });
      await row.getByRole('button', { name: 'Revoke' }).click();
      await page.getByTestId('key-revoke-confirm').click();
      await row.getByText('revoked').waitFor();
      const after = await page.request.get(`${base}/api/auth/me`, { headers: { Authorization: `Bearer ${key}` } });
      if (after.status() !== 401) throw new Error(`a revoked key still works (${after.status()})`);
      await shot('04-settings');
    });

    await step('settings: a project secret is stored and listed by its name only', async () => {
      await nav('nav-settings');
      await page.getByTestId('secret-name').fill(`E2E_TOKEN_${STAMP}`);
      await page.getByTestId('secret-value').fill(`hf_secret_${STAMP}`);
      await page.getByTestId('secret-save').click();
      await page.locator(`[data-testid="secret-row"][data-name="E2E_TOKEN_${STAMP}"]`).waitFor();
      if ((await page.content()).includes(`hf_secret_${STAMP}`)) throw new Error('the secret value is shown back');
      const listed = await apiGet(`/api/projects/${await page.evaluate(() => localStorage.getItem('tunery.project'))}/secrets`).catch(() => null);
      if (listed && JSON.stringify(listed).includes(`hf_secret_${STAMP}`)) throw new Error('the API returns the secret value');
      await shot('04b-settings-secrets');
    });

    await step('models: register the tiny base model', async () => {
      await nav('nav-models');
      await page.getByTestId('model-add').click();
      await page.getByTestId('model-name').fill(modelName);
      await page.getByTestId('model-path').fill(modelPath);
      await pickOption('model-template', 'llama3');
      await page.getByTestId('model-register').click();
      await page.getByTestId('models-table').getByText(modelName).waitFor();
      await shot('05-models');
    });

    await step('datasets: upload a dataset and read its validation report', async () => {
      await nav('nav-datasets');
      await page.getByTestId('dataset-add').click();
      await page.getByTestId('dataset-name').fill(datasetName);
      await page.getByTestId('dataset-files').click().catch(() => {});
      await page.locator('input[type=file]').setInputFiles(identity);
      await page.getByTestId('dataset-upload').click();
      await page.getByTestId('validation-report').waitFor({ timeout: 60_000 });
      await page.getByTestId('validation-report').getByText('Valid').first().waitFor();
      datasetOk = true;
      await shot('06-dataset-report');
    });

    await step('datasets: a broken file gets a report per row', async () => {
      await nav('nav-datasets');
      await page.getByTestId('dataset-add').click();
      await page.getByTestId('dataset-name').fill(`broken-${STAMP}`);
      await page.locator('input[type=file]').setInputFiles(broken);
      await page.getByTestId('dataset-upload').click();
      await page.getByTestId('report-errors').waitFor({ timeout: 60_000 });
      const rows = await page.getByTestId('report-errors').locator('tbody tr').count();
      if (rows < 2) throw new Error(`expected a row error per broken row, got ${rows}`);
      await shot('07-dataset-report-errors');
    });

    await step('datasets: register an entry of an uploaded dataset_info.json', async () => {
      await nav('nav-datasets');
      await page.getByTestId('dataset-add').click();
      await page.getByTestId('dataset-name').fill(`alpaca-zh-${STAMP}`);
      await page.locator('input[type=file]').setInputFiles([join(DEMO, 'dataset_info.json'), join(DEMO, 'alpaca_zh_demo.json')]);
      await page.getByTestId('dataset-entry-name').click();
      await page.getByRole('option', { name: 'alpaca_zh_demo', exact: true }).click();
      await shot('07b-dataset-info-upload', false);
      await page.getByTestId('dataset-upload').click();
      await page.getByTestId('validation-report').getByText('Valid').first().waitFor({ timeout: 60_000 });
    });

    await step('datasets: preview with the template (trained vs masked spans, histogram)', async () => {
      await nav('nav-datasets');
      await page.getByTestId('datasets-table').getByText(datasetName).click();
      await page.getByTestId('tab-preview').click();
      await pickOption('preview-model', `${modelName} (llama3)`);
      await page.getByTestId('preview-run').click();
      await page.getByTestId('preview-result').waitFor({ timeout: 180_000 });
      const trained = await page.locator('[data-trained="true"]').count();
      const masked = await page.locator('[data-trained="false"]').count();
      if (!trained || !masked) throw new Error(`spans: ${trained} trained, ${masked} masked`);
      await page.getByTestId('length-histogram').waitFor();
      await page.getByTestId('truncation-count').waitFor();
      await shot('08-dataset-preview');
    });

    const fillRun = async (name, { maxSteps, learningRate = '5e-4' }) => {
      await go('/runs/new'); // a fresh form
      await page.getByTestId('field-model').waitFor();
      await page.getByTestId('field-name').fill(name);
      await pickOption('field-model', `${modelName} · llama3`);
      await pickOption('field-datasets', datasetName);
      await page.keyboard.press('Escape');
      const set = async (field, value) => {
        const input = page.getByTestId(`field-${field}`);
        await input.fill(String(value));
        await input.blur();
      };
      await set('cutoff_len', 128);
      await set('val_size', 0.1);
      await set('eval_steps', 10);
      await set('learning_rate', learningRate);
      await set('max_steps', maxSteps);
      await set('per_device_train_batch_size', 2);
      await set('gradient_accumulation_steps', 1);
      await set('gpus', 0);
      await page.getByTestId('advanced-toggle').click();
      await set('logging_steps', 1);
      await set('save_steps', 50);
    };

    await step('new run: YAML import, checks before submit, server messages', async () => {
      await nav('nav-runsnew');
      await page.getByTestId('import-open').click();
      await page.getByTestId('import-text').fill(
        `model_name_or_path: ${modelName}\nstage: sft\nfinetuning_type: lora\nlora_rank: 4\ndataset: ${datasetName}\ntemplate: llama3\nlearning_rate: 1.0e-4\nnum_train_epochs: 1.0\nlerning_rate: 3\n`,
      );
      await page.getByTestId('import-apply').click();
      await page.getByTestId('spec-yaml').getByText('lora_rank: 4').waitFor();
      await page.getByTestId('submit-run').click();
      await page.getByTestId('form-problems').getByText("unknown key; did you mean 'learning_rate'?").waitFor();
      await shot('09-new-run-problems');
      await page.getByRole('button', { name: 'Remove lerning_rate' }).click();
      await page.getByTestId('field-lora_rank').fill('0');
      await page.getByTestId('form-problems').getByText('Input should be greater than 0 (got 0)').waitFor();
      // what only the server can know comes back as a 422 and is shown the same way
      await page.getByTestId('import-open').click();
      await page.getByTestId('import-text').fill(`model_name_or_path: ${modelName}\nstage: sft\ndataset: missing-${STAMP}\ntemplate: llama3\nuse_cpu: true\n`);
      await page.getByTestId('import-apply').click();
      await page.getByTestId('submit-run').click();
      await page.getByTestId('form-problems').getByText(`dataset 'missing-${STAMP}' is not registered in this project`).waitFor();
      await shot('09b-new-run-server-problems');
    });

    if (!SKIP_TRAINING && datasetOk) {
      await step('new run: start a run from the form', async () => {
        await fillRun(`e2e main ${STAMP}`, { maxSteps: 400 }); // long enough to be reloaded mid-run
        await page.getByTestId('spec-yaml').getByText('use_cpu: true').waitFor();
        await shot('10-new-run');
        // the chosen dataset previewed with the form's model, template and cutoff
        await page.getByTestId(`preview-dataset-${datasetName}`).click();
        await page.getByTestId('preview-run').click();
        await page.getByTestId('preview-result').waitFor({ timeout: 180_000 });
        await shot('10b-new-run-dataset-preview', false);
        await page.keyboard.press('Escape');
        await page.getByTestId('preview-result').waitFor({ state: 'detached' });
        await page.getByTestId('submit-run').click();
        await page.waitForURL(/\/runs\/[0-9a-f-]+$/, { timeout: 30_000 });
        mainRun = page.url().split('/').pop();
      });

      if (mainRun) {
        await step('run: the loss chart grows live over the websocket', async () => {
          const points = () => page.getByTestId('chart-loss').getAttribute('data-points').then(Number);
          await waitFor(async () => (await points()) >= 3, 'three loss points', 240_000, 1000);
          const first = await points();
          await waitFor(async () => (await points()) > first + 3, 'more loss points', 120_000, 500);
          await page.getByTestId('eta').waitFor();
          await shot('11-run-live');
        });

        await step('run: reload mid-run loses nothing (replay via ?after=)', async () => {
          const before = Number(await page.getByTestId('chart-loss').getAttribute('data-points'));
          const seqBefore = Number(await page.getByTestId('stream-state').getAttribute('data-seq'));
          const status = (await apiGet(`/api/jobs/${mainRun}`)).status;
          if (status !== 'running') throw new Error(`the run is ${status}, not running: nothing to reload mid-run`);
          await page.reload();
          await waitFor(async () => Number(await page.getByTestId('stream-state').getAttribute('data-seq')) >= seqBefore, 'the replay', 60_000);
          const chart = page.getByTestId('chart-loss');
          const [after, lastStep] = await chart.evaluate((node) => [Number(node.dataset.points), Number(node.dataset.lastStep)]);
          if (after < before) throw new Error(`the chart had ${before} points before the reload, ${after} after`);
          // every loss the server stored up to the chart's newest step is on the chart (training goes on meanwhile)
          const stored = await apiGet(`/api/jobs/${mainRun}/metrics?limit=10000`);
          const lossSteps = stored.items.filter((m) => typeof m.values.loss === 'number' && m.step <= lastStep).length;
          if (after < lossSteps) throw new Error(`chart shows ${after} loss points up to step ${lastStep}, the server stored ${lossSteps}`);
        });

        await step('overview: running job with progress, workers', async () => {
          await nav('nav-overview');
          await page.getByTestId('active-jobs').getByTestId('job-progress').first().waitFor();
          await shot('12-overview');
        });

        await step('runs: a second run is queued, then cancelled', async () => {
          await fillRun(`e2e cancel ${STAMP}`, { maxSteps: 120, learningRate: '1e-3' });
          await page.getByTestId('submit-run').click();
          await page.waitForURL(/\/runs\/[0-9a-f-]+$/, { timeout: 30_000 });
          const id = page.url().split('/').pop();
          await page.getByTestId('run-cancel').click();
          await waitFor(async () => (await apiGet(`/api/jobs/${id}`)).status === 'cancelled', 'the run to be cancelled', 120_000, 1000);
          await page.locator('[data-testid="status-badge"][data-status="cancelled"]').first().waitFor({ timeout: 30_000 });
          await page.getByTestId('run-resume').waitFor();
          await shot('13-run-cancelled');
        });

        await step('run: finishes; checkpoints, artifacts, spec', async () => {
          await go(`/runs/${mainRun}`);
          await waitFor(async () => ['succeeded', 'failed', 'cancelled'].includes((await apiGet(`/api/jobs/${mainRun}`)).status), 'the main run to finish', 600_000, 2000);
          await page.reload();
          await page.locator('[data-testid="status-badge"][data-status="succeeded"]').first().waitFor({ timeout: 30_000 });
          // the eval loss is drawn in the loss chart, beside its training twin
          await waitFor(async () => ((await page.getByTestId('chart-loss').getAttribute('data-series')) ?? '').split(',').includes('eval_loss'), 'eval loss points', 30_000);
          await shot('14-run-finished');
          await page.getByTestId('tab-logs').click();
          await page.getByTestId('log-tail').waitFor();
          await shot('15-run-logs');
          await page.getByRole('tab', { name: 'Checkpoints' }).click();
          await page.getByTestId('checkpoints').waitFor();
          await page.getByRole('tab', { name: 'Artifacts' }).click();
          await page.getByTestId('artifacts').or(page.getByText('No artifacts yet.')).first().waitFor();
          await shot('16-run-artifacts');
          await page.getByTestId('tab-spec').click();
          await page.getByTestId('run-spec').waitFor();
          await shot('16-run-spec-yaml');
        });

        await step('runs and compare: overlaid curves and only the differing settings', async () => {
          await nav('nav-runs');
          await page.getByTestId('runs-table').waitFor();
          await shot('17-runs');
          const rows = page.getByTestId('run-row');
          await rows.nth(0).getByRole('checkbox').check();
          await rows.nth(1).getByRole('checkbox').check();
          await page.getByTestId('compare-picked').click();
          await page.getByTestId('compare-chart').waitFor();
          await page.getByTestId('compare-diff').waitFor({ timeout: 30_000 });
          await shot('18-compare');
        });
      }
    }

    if (mainRun && datasetOk) {
      // a predict eval: a few rows, short answers, on the CPU worker; waits for it like a training run
      const startEval = async (name, pickModel) => {
        await pickModel();
        await page.getByTestId('eval-name').fill(name);
        await pickOption('eval-datasets', datasetName);
        await page.keyboard.press('Escape');
        await page.getByTestId('eval-max-samples').fill('4');
        await page.getByTestId('gen-max_new_tokens').fill('8');
        const gpus = await page.getByTestId('eval-gpus').inputValue();
        if (gpus !== '0') throw new Error(`the form asks for ${gpus} GPUs on a CPU-only install`);
        await page.getByTestId('eval-submit').click();
        await page.waitForURL(/\/runs\/[0-9a-f-]+$/, { timeout: 30_000 });
        const id = page.url().split('/').pop();
        await page.getByTestId('run-kind-eval').waitFor();
        await page.getByTestId('job-progress').waitFor();
        await waitFor(async () => TERMINAL.includes((await apiGet(`/api/jobs/${id}`)).status), `eval ${name} to finish`, 420_000, 2000);
        const job = await apiGet(`/api/jobs/${id}`);
        if (job.status !== 'succeeded') throw new Error(`the eval ${job.status}: ${job.error_code} ${job.error_message}`);
        return id;
      };

      await step('evaluate: a predict eval of the finished fine-tune (from its run page), live, then its figures and samples', async () => {
        await go(`/runs/${mainRun}`);
        await page.getByTestId('run-evaluate').click();
        await page.waitForURL(/\/evaluate\/new\?job=/);
        evalFt = await startEval(`e2e eval ft ${STAMP}`, async () => {
          // the run's fine-tune is picked already
          await waitFor(async () => (await page.getByTestId('eval-model').inputValue()).includes(`e2e main ${STAMP}`), 'the fine-tune picked', 30_000);
          await shot('19-evaluate-new');
        });
        await page.reload();
        await page.locator('[data-testid="status-badge"][data-status="succeeded"]').first().waitFor({ timeout: 30_000 });
        const table = page.getByTestId('metric-table');
        await table.waitFor({ timeout: 30_000 });
        await table.locator('[data-testid="figure-row"][data-name="bleu-4"]').waitFor();
        await page.getByTestId('sample').first().waitFor({ timeout: 30_000 });
        const total = Number(await page.getByTestId('samples-total').getAttribute('data-total'));
        if (total !== 4) throw new Error(`the sample browser lists ${total} samples, not the 4 asked for`);
        await page.getByTestId('samples-sort').getByText('Worst first').click();
        await page.getByTestId('sample').first().waitFor();
        await shot('19b-eval-run');
      });

      if (evalFt) {
        await step('evaluate: the base model on the same rows, both side by side, and the diff of their answers', async () => {
          await nav('nav-evaluate');
          await page.getByTestId('eval-new').click();
          evalBase = await startEval(`e2e eval base ${STAMP}`, async () => {
            await page.getByTestId('eval-model').waitFor();
            await pickOption('eval-model', modelName);
          });
          await go(`/evaluate?runs=${evalBase},${evalFt}`);
          const table = page.getByTestId('metric-table');
          await table.waitFor({ timeout: 30_000 });
          const headers = await table.locator('thead th').allTextContents();
          if (headers.length !== 3) throw new Error(`metric table columns: ${headers.join(', ')}`);
          await shot('19c-evaluate-compare');
          await page.getByTestId('tab-diff').click();
          const counts = page.getByTestId('diff-counts');
          await counts.waitFor({ timeout: 30_000 });
          const sum = await counts.evaluate((node) => ['better', 'worse', 'same'].reduce((total, key) => total + Number(node.dataset[key]), 0));
          if (sum !== 4) throw new Error(`better + worse + same = ${sum}, not the 4 samples`);
          // every sample, changed or not, once the filter is off
          await page.getByTestId('diff-changed-only').click({ force: true });
          await waitFor(async () => (await page.getByTestId('diff-item').count()) === 4, 'all four samples in the diff', 30_000);
          await shot('19d-evaluate-diff');
        });
      }
    }

    if (mainRun) {
      await step('export: the fine-tune merged (safetensors) and as GGUF, live, then its files: sizes, checks, download, card, chat with it', async () => {
        await go(`/runs/${mainRun}`);
        await page.getByTestId('run-export').click();
        await page.waitForURL(/\/export\?job=/);
        // the run's fine-tune is picked already
        await waitFor(async () => (await page.getByTestId('export-model').inputValue()).includes(`e2e main ${STAMP}`), 'the fine-tune picked', 30_000);
        await page.getByTestId('export-name').fill(`e2e export ${STAMP}`);
        await page.getByRole('checkbox', { name: /^Merged model/ }).check();
        if (GGUF) {
          await page.getByRole('checkbox', { name: /^GGUF/ }).check();
          const types = page.getByTestId('export-gguf').getByRole('checkbox');
          for (let i = 0; i < (await types.count()); i++) {
            const box = types.nth(i);
            const name = (await box.getAttribute('value')) ?? '';
            if (name === 'F16') await box.check();
            else if (name) await box.uncheck();
          }
        }
        // the expected size, before anything starts
        const expected = GGUF ? 2 : 1;
        await waitFor(async () => (await page.getByTestId('export-estimate-item').count()) === expected, `an estimate of ${expected} files`, 30_000);
        if (!(Number(await page.getByTestId('export-estimate-total').getAttribute('data-bytes')) > 0)) throw new Error('no expected size');
        await shot('20-export-new');
        await page.getByTestId('export-submit').click();
        const row = page.getByTestId('export-row').filter({ hasText: `e2e export ${STAMP}` });
        await row.waitFor({ timeout: 30_000 });
        exportJob = await row.getAttribute('data-job');
        await waitFor(async () => TERMINAL.includes((await apiGet(`/api/jobs/${exportJob}`)).status), 'the export to finish', 600_000, 2000);
        const job = await apiGet(`/api/jobs/${exportJob}`);
        if (job.status !== 'succeeded') throw new Error(`the export ${job.status}: ${job.error_code} ${job.error_message}`);
        await row.and(page.locator('[data-status="succeeded"]')).waitFor({ timeout: 30_000 });
        const files = row.getByTestId('artifact-row');
        await files.first().waitFor({ timeout: 30_000 });
        const byFormat = async (format) => row.locator(`[data-testid="artifact-row"][data-format="${format}"]`).first();
        const formats = await files.evaluateAll((rows) => rows.map((r) => `${r.dataset.format}:${r.dataset.size}`));
        for (const format of ['hf', 'card', ...(GGUF ? ['gguf', 'modelfile'] : [])]) {
          const entry = formats.find((item) => item.startsWith(`${format}:`));
          if (!entry || !(Number(entry.split(':')[1]) > 0)) throw new Error(`no ${format} file with a size: ${formats.join(', ')}`);
        }
        await shot('20b-export-files');
        // download the smallest servable file and check what arrives
        const target = await byFormat(GGUF ? 'gguf' : 'card');
        const size = Number(await target.getAttribute('data-size'));
        const [download] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), target.getByTestId('artifact-download').click()]);
        const saved = join(WORK, `download-${download.suggestedFilename()}`);
        await download.saveAs(saved);
        const bytes = readFileSync(saved);
        if (bytes.length !== size) throw new Error(`downloaded ${bytes.length} bytes, the list says ${size}`);
        if (GGUF && bytes.subarray(0, 4).toString('latin1') !== 'GGUF') throw new Error('the downloaded file is not GGUF');
        // the verification figures of the GGUF file, and the model card (and the Modelfile) shown inline
        if (GGUF) await target.locator('[data-testid="artifact-check"][data-check="greedy_match"]').waitFor();
        for (const format of GGUF ? ['card', 'modelfile'] : ['card']) {
          await (await byFormat(format)).getByTestId('artifact-view').click();
          const text = page.getByTestId('artifact-text');
          await waitFor(async () => ((await text.textContent()) ?? '').trim().length > 20, `the ${format} shown`, 30_000);
          if (format === 'modelfile' && !/^FROM /m.test((await text.textContent()) ?? '')) throw new Error('the Modelfile has no FROM line');
          await page.waitForTimeout(400); // the dialog's opening transition
          await shot(`20c-export-${format}`, false);
          await page.getByRole('dialog').getByRole('button', { name: 'Done' }).click();
        }
        // deploy it (its engine started and kept warm), then let it go again
        const chatTarget = (await target.getByTestId('artifact-served-id').count()) ? target : await byFormat('hf');
        await chatTarget.getByTestId('artifact-deploy').click();
        await waitFor(async () => (await chatTarget.getByTestId('artifact-deploy').getAttribute('data-deployed')) === 'true', 'the export deployed', 180_000, 1000);
        await shot('20e-export-deployed', false);
        await chatTarget.getByTestId('artifact-deploy').click();
        await waitFor(async () => (await chatTarget.getByTestId('artifact-deploy').getAttribute('data-deployed')) === 'false', 'the export undeployed', 60_000, 1000);
        // chat with the exported file (served at /v1 at once)
        const chatRow = chatTarget;
        const model = (await chatRow.getByTestId('artifact-served-id').textContent())?.trim();
        await chatRow.getByTestId('artifact-chat').click();
        await page.waitForURL(/\/chat\?model=/);
        await waitFor(async () => (await page.getByTestId('chat-model').inputValue()) === model, 'the export picked in the chat', 30_000);
        await page.getByTestId('chat-max-tokens').fill('12');
        const thumb = page.getByTestId('chat-temperature').getByRole('slider');
        await thumb.focus();
        await thumb.press('Home');
        await page.getByTestId('chat-input').fill('Who are you?');
        await page.getByTestId('chat-send').click();
        const answer = page.getByTestId('chat-transcript').locator('[data-role="assistant"]');
        await answer.first().waitFor({ timeout: 180_000 });
        await page.getByTestId('chat-send').waitFor({ timeout: 180_000 });
        if (await page.getByTestId('chat-transcript').getByRole('alert').count()) {
          throw new Error(`the chat with the export failed: ${await page.getByTestId('chat-transcript').getByRole('alert').first().textContent()}`);
        }
        if (!((await answer.first().textContent()) ?? '').trim()) throw new Error('a blank answer from the export');
        await shot('20d-export-chat');
      });
    }

    if (mainRun) {
      await step('chat: the finished fine-tune side by side with its base model (/v1, streamed)', async () => {
        const served = await apiGet('/v1/models');
        const fineTune = served.data.map((m) => m.id).find((id) => id.startsWith('ft:') && id.endsWith(`:${mainRun}`));
        if (!fineTune) throw new Error(`/v1/models does not list the finished run: ${served.data.map((m) => m.id).join(', ')}`);
        await nav('nav-chat');
        await pickOption('chat-model', fineTune);
        await page.getByTestId('chat-compare').click();
        await page.getByRole('option', { name: modelName, exact: true }).click();
        await page.getByTestId('chat-max-tokens').fill('12');
        // greedy answers: the same every time (a sampled first token may be the end token)
        const thumb = page.getByTestId('chat-temperature').getByRole('slider');
        await thumb.focus();
        await thumb.press('Home');
        await page.getByText('Temperature: 0.00').waitFor();
        await page.getByTestId('chat-input').fill('Who are you?');
        await page.getByTestId('chat-send').click();
        const panes = page.getByTestId('chat-transcript');
        const answers = panes.locator('[data-role="assistant"]');
        await waitFor(async () => (await answers.count()) === 2, 'an answer in both panes', 180_000, 500);
        await page.getByTestId('chat-send').waitFor({ timeout: 180_000 }); // streaming done: Stop turns back into Send
        // never a blank bubble: a model that ends at once (its first token the end token) is said to have;
        // text streams into at least one pane
        for (const text of await answers.allTextContents()) if (!text.trim()) throw new Error('a blank answer bubble');
        if ((await panes.getByTestId('chat-empty-answer').count()) === 2) throw new Error('neither model answered with text');
        if (await page.getByTestId('chat-transcript').getByRole('alert').count()) throw new Error('a chat pane shows an error');
        // the conversation goes on: the second turn carries the first
        await page.getByTestId('chat-input').fill('And again?');
        await page.getByTestId('chat-input').press('Enter');
        await waitFor(async () => (await answers.count()) === 4, 'the second answers', 180_000, 500);
        await page.getByTestId('chat-send').waitFor({ timeout: 180_000 });
        await shot('21-chat');
      });
    }

    await step('switch to Chinese; the choice survives a reload', async () => {
      await nav('nav-overview');
      await page.getByTestId('language-switch').first().click();
      await page.getByRole('option', { name: '中文' }).click();
      await page.getByText('总览').first().waitFor();
      await page.reload();
      await page.getByText('总览').first().waitFor();
      await shot('22-overview-zh');
      if (mainRun) {
        await go(`/runs/${mainRun}`);
        await page.getByText('训练损失').first().waitFor();
        await shot('23-run-zh');
      }
      await nav('nav-runsnew');
      await page.getByTestId('submit-run').waitFor();
      await shot('24-new-run-zh');
      await go(evalFt && evalBase ? `/evaluate?runs=${evalBase},${evalFt}` : '/evaluate');
      await page.getByText('新建评估').first().waitFor();
      if (evalFt && evalBase) await page.getByTestId('metric-table').getByText('最佳').first().waitFor();
      await shot('24b-evaluate-zh');
      await go('/export');
      await page.getByTestId('export-title').getByText('导出').waitFor();
      if (exportJob) await page.getByTestId('export-artifacts').first().getByText('校验').first().waitFor();
      await shot('24c-export-zh');
      await page.getByTestId('language-switch').first().click();
      await page.getByRole('option', { name: 'English' }).click();
    });

    await step('layout at 390 px', async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      for (const [path, name] of [
        ['/', '25-mobile-overview'],
        ['/runs/new', '26-mobile-new-run'],
        ['/datasets', '27-mobile-datasets'],
        ['/evaluate/new', '27b-mobile-new-eval'],
        ['/export', '27c-mobile-export'],
        ...(mainRun ? [[`/runs/${mainRun}`, '28-mobile-run']] : []),
      ]) {
        await go(path);
        await page.waitForLoadState('networkidle').catch(() => {});
        await page.waitForTimeout(500);
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        await shot(name);
        if (overflow > 2) throw new Error(`${path} is ${overflow}px wider than the 390 px screen`);
      }
      await page.getByRole('button', { name: 'Menu' }).click();
      await page.getByTestId('nav-models').waitFor();
      await shot('29-mobile-menu', false);
      await page.setViewportSize({ width: 1280, height: 900 });
    });

    await step('no uncaught errors in the page', async () => {
      if (pageErrors.length) throw new Error(pageErrors.join('\n'));
    });
  } finally {
    await browser.close();
    stopChildren();
  }
}

let failed = false;
try {
  await main();
} catch (error) {
  log(`\n${error?.stack ?? error}`);
  failed = true;
  stopChildren();
}
const bad = results.filter((r) => !r.ok);
log(`\n${results.length - bad.length} of ${results.length} steps passed; screenshots in ${SHOTS}`);
if (bad.length || failed) {
  for (const child of children) {
    const tail = child.out.join('').split('\n').slice(-15).join('\n');
    if (tail.trim()) log(`\n--- ${child.name} (last lines) ---\n${tail}`);
  }
  process.exit(1);
}
