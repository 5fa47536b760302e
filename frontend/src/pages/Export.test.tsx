import { act, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { useLocation } from 'react-router';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { installFakeApi, json, PROJECT, USER, type FakeRequest } from '../test/fakeApi';
import { FakeWebSocket } from '../test/fakeWebSocket';
import { EXPORT_CATALOG, EXPORT_DONE, EXPORT_RUNNING, JOBS, SERVED } from '../test/exports';
import { renderPage } from '../test/render';
import type { ExportRun } from '../export/queries';
import { Export } from './Export';

const MB = 1024 * 1024;

/** The estimate the fake server gives: 1M parameters, 4 bytes each for safetensors, bits per weight for GGUF. */
function estimate(body: { formats: string[]; gguf_types: string[] | null; dtype: string }) {
  const items: { format: string; quantization: string | null; size_bytes: number }[] = [];
  for (const format of body.formats) {
    if (format === 'gguf') {
      for (const type of body.gguf_types ?? []) {
        const bits = EXPORT_CATALOG.gguf_types.find((item) => item.name === type)!.bits_per_weight;
        items.push({ format, quantization: type, size_bytes: (bits / 8) * MB });
      }
    } else items.push({ format, quantization: null, size_bytes: (body.dtype === 'float16' ? 2 : 4) * MB });
  }
  return { parameters: 1_000_000, items, total_bytes: items.reduce((sum, item) => sum + item.size_bytes, 0) };
}

function api(exports: () => ExportRun[] = () => [], extra: Parameters<typeof installFakeApi>[0] = {}) {
  return installFakeApi({
    'GET /api/auth/me': () => USER,
    'GET /api/projects': () => [PROJECT],
    'GET /api/exports/catalog': () => EXPORT_CATALOG,
    'GET /v1/models': () => SERVED,
    'GET /api/jobs': () => JOBS,
    'GET /api/workers': () => [],
    'GET /api/projects/p1/secrets': () => [{ name: 'HF_TOKEN', created_at: '2025-01-01T00:00:00Z', updated_at: '2025-01-01T00:00:00Z' }],
    'GET /api/projects/p1/datasets': () => [],
    'GET /api/projects/p1/exports': () => exports(),
    'GET /api/deployments': () => [],
    'POST /api/exports/estimate': (request) => estimate(request.body as Parameters<typeof estimate>[0]),
    ...extra,
  });
}

const posts = (requests: FakeRequest[], path: string) => requests.filter((r) => r.method === 'POST' && r.path === path);

async function pick(user: ReturnType<typeof userEvent.setup>, testId: string, option: string) {
  await user.click(screen.getByTestId(testId));
  await user.click(await screen.findByRole('option', { name: option }));
}

function Where() {
  const location = useLocation();
  return <div data-testid="where">{location.pathname + location.search}</div>;
}

beforeEach(() => {
  // a listed export that is still running follows its job's stream
  FakeWebSocket.reset();
  vi.stubGlobal('WebSocket', FakeWebSocket);
});
afterEach(() => vi.unstubAllGlobals());

describe('export screen: the form', () => {
  it('shows the expected size before starting, asked again as the choices change', async () => {
    const requests = api();
    const user = userEvent.setup({ delay: null });
    renderPage(<Export />, { route: '/export?tab=new' });
    expect(await screen.findByTestId('export-estimate')).toHaveTextContent('Pick a model and a format');
    // the sources: base, fine-tunes and checkpoints; not the exports
    await user.click(await screen.findByTestId('export-model'));
    const options = (await screen.findAllByRole('option')).map((option) => option.textContent);
    expect(options).toEqual(['tiny', 'first run (tiny)', 'second run (tiny)', 'j3 (other)', 'first run · step 50']);
    await user.click(screen.getByRole('option', { name: 'first run (tiny)' }));
    await waitFor(() => expect(screen.getByTestId('export-estimate-total').dataset.bytes).toBe(String(4 * MB)));
    expect(screen.getByTestId('export-estimate-total')).toHaveTextContent('4.0 MB');
    expect(screen.getByTestId('export-estimate')).toHaveTextContent('1.0M parameters');
    expect(posts(requests, '/api/exports/estimate').at(-1)!.body).toEqual({ model: 'ft:tiny:demo:j1', formats: ['hf'], gguf_types: null, dtype: 'auto', gptq_bits: 4 });
    // GGUF with two types: a line per file, the total of all
    await user.click(screen.getByRole('checkbox', { name: /GGUF \(llama\.cpp, Ollama\)/ }));
    for (const type of ['F16', 'Q4_K_M']) {
      const box = within(screen.getByTestId('export-gguf')).getByRole('checkbox', { name: new RegExp(`^${type}`) }) as HTMLInputElement;
      if (!box.checked) await user.click(box);
    }
    for (const type of ['F32', 'BF16', 'Q8_0', 'Q4_0']) {
      const box = within(screen.getByTestId('export-gguf')).getByRole('checkbox', { name: new RegExp(`^${type}`) }) as HTMLInputElement;
      if (box.checked) await user.click(box);
    }
    const ggufTotal = 4 * MB + 2 * MB + (4.85 / 8) * MB;
    await waitFor(() => expect(screen.getByTestId('export-estimate-total').dataset.bytes).toBe(String(ggufTotal)));
    expect(screen.getAllByTestId('export-estimate-item').map((row) => `${row.dataset.format}:${row.dataset.quantization}`)).toEqual(['hf:', 'gguf:F16', 'gguf:Q4_K_M']);
    expect(screen.getAllByTestId('export-estimate-item')[2]).toHaveTextContent('GGUF (llama.cpp, Ollama) · Q4_K_M620.8 KB');
    // the dtype changes the merged model's size
    await user.click(screen.getByRole('radio', { name: 'float16' }));
    await waitFor(() => expect(screen.getByTestId('export-estimate-total').dataset.bytes).toBe(String(ggufTotal - 2 * MB)));
    expect(posts(requests, '/api/exports/estimate').at(-1)!.body).toMatchObject({ dtype: 'float16', gguf_types: ['F16', 'Q4_K_M'] });
  });

  it('shows what the server says when it cannot estimate', async () => {
    api(undefined, { 'POST /api/exports/estimate': () => json(404, { detail: "model 'tiny' is not served" }) });
    const user = userEvent.setup({ delay: null });
    renderPage(<Export />, { route: '/export?tab=new' });
    await waitFor(() => expect(screen.getByTestId('export-model')).toBeEnabled());
    await pick(user, 'export-model', 'tiny');
    expect(await screen.findByTestId('export-estimate-error')).toHaveTextContent("model 'tiny' is not served");
  });

  it('checks the form before starting, then sends the export and shows it in the list', async () => {
    let created = false;
    const requests = api(() => (created ? [{ ...EXPORT_RUNNING, job: { ...EXPORT_RUNNING.job, id: 'x9', status: 'queued' } } as ExportRun] : []), {
      'POST /api/projects/p1/exports': () => {
        created = true;
        return { ...EXPORT_RUNNING.job, id: 'x9', status: 'queued', name: 'my export' };
      },
    });
    const user = userEvent.setup({ delay: null });
    renderPage(<Export />, { route: '/export?job=j1' });
    // a run's link starts on the form with its fine-tune picked
    await waitFor(() => expect(screen.getByTestId('export-model')).toHaveValue('first run (tiny)'));
    await user.click(screen.getByRole('checkbox', { name: /Merged model/ }));
    await user.click(screen.getByTestId('export-hub-repo'));
    await user.paste('not a repo');
    await user.click(screen.getByTestId('export-submit'));
    const problems = await screen.findByTestId('export-problems');
    expect(problems).toHaveTextContent('3 things to fix');
    expect(problems).toHaveTextContent('Pick at least one format.');
    expect(problems).toHaveTextContent('A hub repository is written owner/name.');
    expect(problems).toHaveTextContent('Pick the project secret that holds the hub token.');
    expect(posts(requests, '/api/projects/p1/exports')).toEqual([]);
    // fix them: a format with a type, another adapter, a hub repo and its token secret
    await user.click(screen.getByRole('checkbox', { name: /GGUF/ }));
    for (const box of within(screen.getByTestId('export-gguf')).getAllByRole('checkbox') as HTMLInputElement[]) {
      if (box.checked) await user.click(box);
    }
    await user.click(within(screen.getByTestId('export-gguf')).getByRole('checkbox', { name: /^F16/ }));
    await pick(user, 'export-adapters', 'second run (tiny)');
    await user.clear(screen.getByTestId('export-hub-repo'));
    await user.paste('me/tiny-chat');
    await pick(user, 'export-hub-secret', 'HF_TOKEN');
    await user.click(screen.getByTestId('export-name'));
    await user.paste('my export');
    await user.click(screen.getByTestId('export-submit'));
    await waitFor(() => expect(posts(requests, '/api/projects/p1/exports')).toHaveLength(1));
    expect(posts(requests, '/api/projects/p1/exports')[0].body).toEqual({
      model: 'ft:tiny:demo:j1',
      extra_adapters: ['ft:tiny:demo:j2'],
      formats: ['gguf'],
      gguf_types: ['F16'],
      dtype: 'auto',
      export_size: 5,
      legacy_format: false,
      ollama: true,
      verify: true,
      gptq_bits: null,
      gptq_dataset_version_id: null,
      hub_model_id: 'me/tiny-chat',
      hub: 'huggingface',
      hub_token_secret: 'HF_TOKEN',
      hub_private: true,
      name: 'my export',
    });
    // the list opens with the new export in it
    await waitFor(() => expect(screen.getAllByTestId('export-row').map((row) => row.dataset.job)).toEqual(['x9']));
  });
});

describe('export screen: the exports', () => {
  it('lists the files with sizes and verification figures, shows the Modelfile, opens the chat', async () => {
    api(() => [EXPORT_DONE], {
      'GET /api/jobs/x1/artifacts/Modelfile': () => new Response('FROM ./model-Q4_K_M.gguf\nPARAMETER stop "<|eot_id|>"\n', { status: 200 }),
    });
    const user = userEvent.setup({ delay: null });
    renderPage(<Export />, { route: '/export', path: '/export', others: { '/chat': <Where /> } });
    const row = await screen.findByTestId('export-row');
    await waitFor(() => expect(within(row).getByTestId('export-source')).toHaveTextContent('From first run (tiny) + second run (tiny)'));
    expect(within(row).getByTestId('export-total')).toHaveTextContent('5 files · 83.0 MB');
    const files = within(row).getAllByTestId('artifact-row');
    expect(files.map((file) => file.dataset.name)).toEqual(['model', 'gguf-F16', 'gguf-Q4_K_M', 'Modelfile', 'README.md']);
    expect(within(files[0]).getByTestId('artifact-size')).toHaveTextContent('50.0 MB');
    expect(within(files[1]).getAllByTestId('artifact-check').map((badge) => badge.textContent)).toEqual(['greedy match 100 %', 'perplexity ×1.000']);
    expect(within(files[2]).getAllByTestId('artifact-check').map((badge) => badge.textContent)).toEqual(['greedy match 87.5 %', 'perplexity ×1.062']);
    // only served files can be chatted with; only the Modelfile and the card are shown inline
    expect(files.map((file) => Boolean(within(file).queryByTestId('artifact-chat')))).toEqual([true, true, false, false, false]);
    expect(files.map((file) => Boolean(within(file).queryByTestId('artifact-view')))).toEqual([false, false, false, true, true]);
    await user.click(within(files[3]).getByTestId('artifact-view'));
    expect(await screen.findByTestId('artifact-text')).toHaveTextContent('FROM ./model-Q4_K_M.gguf');
    await user.click(screen.getByRole('button', { name: 'Done' }));
    await user.click(within(files[1]).getByTestId('artifact-chat'));
    expect(await screen.findByTestId('where')).toHaveTextContent(`/chat?model=${encodeURIComponent('ft:tiny:demo:x1:gguf-f16')}`);
  });

  it('deletes a file only after confirming', async () => {
    let artifacts = EXPORT_DONE.artifacts;
    const requests = api(() => [{ ...EXPORT_DONE, artifacts }], {
      'DELETE /api/jobs/x1/artifacts/gguf-Q4_K_M': () => {
        artifacts = artifacts.filter((item) => item.name !== 'gguf-Q4_K_M');
        return new Response(null, { status: 204 });
      },
    });
    const user = userEvent.setup({ delay: null });
    renderPage(<Export />, { route: '/export' });
    const file = (await screen.findAllByTestId('artifact-row')).find((row) => row.dataset.name === 'gguf-Q4_K_M')!;
    await user.click(within(file).getByTestId('artifact-delete'));
    expect(await screen.findByText('Delete gguf-Q4_K_M (8.0 MB)? Its files are removed from the server.')).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Cancel' }));
    expect(requests.filter((r) => r.method === 'DELETE')).toEqual([]);
    await user.click(within(file).getByTestId('artifact-delete'));
    await user.click(await screen.findByTestId('artifact-delete-confirm'));
    await waitFor(() => expect(screen.getAllByTestId('artifact-row').map((row) => row.dataset.name)).not.toContain('gguf-Q4_K_M'));
    expect(requests.filter((r) => r.method === 'DELETE').map((r) => r.path)).toEqual(['/api/jobs/x1/artifacts/gguf-Q4_K_M']);
  });

  it('deploys a served file and can undeploy it', async () => {
    let deployed: { id: string; model: string; engine: null; adapter: boolean; created_at: string }[] = [];
    const requests = api(() => [EXPORT_DONE], {
      'GET /api/deployments': () => deployed,
      'POST /api/deployments': (request) => {
        deployed = [{ id: 'd1', model: (request.body as { model: string }).model, engine: null, adapter: false, created_at: '2025-01-03T00:03:00Z' }];
        return deployed[0];
      },
      'DELETE /api/deployments/d1': () => {
        deployed = [];
        return new Response(null, { status: 204 });
      },
    });
    const user = userEvent.setup({ delay: null });
    renderPage(<Export />, { route: '/export' });
    const file = (await screen.findAllByTestId('artifact-row')).find((row) => row.dataset.name === 'gguf-F16')!;
    await user.click(within(file).getByTestId('artifact-deploy'));
    await waitFor(() => expect(within(file).getByTestId('artifact-deploy').dataset.deployed).toBe('true'));
    expect(posts(requests, '/api/deployments')[0].body).toEqual({ model: 'ft:tiny:demo:x1:gguf-f16' });
    await user.click(within(file).getByTestId('artifact-deploy'));
    await waitFor(() => expect(within(file).getByTestId('artifact-deploy').dataset.deployed).toBe('false'));
  });

  it('follows a running export live: phases, files as they are written, then the registered files', async () => {
    let current: ExportRun = EXPORT_RUNNING;
    api(() => [current]);
    renderPage(<Export />, { route: '/export' });
    await waitFor(() => expect(FakeWebSocket.instances.length).toBeGreaterThan(0));
    const socket = FakeWebSocket.last();
    expect(socket.url).toMatch(/\/api\/jobs\/x2\/stream\?after=0$/);
    act(() => {
      socket.accept();
      socket.push({ seq: 1, type: 'started', stage: 'export', total_steps: 3, device: 'cpu' });
      socket.push({ seq: 2, type: 'log', level: 'info', message: 'merging 1 adapter' });
      socket.push({ seq: 3, type: 'progress', step: 1, total_steps: 3, epoch: 0, elapsed_seconds: 4, eta_seconds: 8 });
      socket.push({ seq: 4, type: 'artifact', name: 'model', format: 'hf', quantization: null, path: '.', size_bytes: 4 * MB, serve_engine: 'hf', checks: { greedy_match: 1 } });
      socket.push({ seq: 5, type: 'log', level: 'info', message: 'writing GGUF F16' });
    });
    await waitFor(() => expect(screen.getByTestId('export-phase')).toHaveTextContent('writing GGUF F16'));
    expect(screen.getByTestId('job-progress').dataset.step).toBe('1');
    expect(screen.getByTestId('job-progress').dataset.total).toBe('3');
    expect(screen.getAllByTestId('written-file').map((row) => row.dataset.name)).toEqual(['model']);
    expect(screen.getByTestId('written-file')).toHaveTextContent('4.0 MB');
    // the job ends: the list is asked again and shows the registered files
    current = { ...EXPORT_DONE, job: { ...EXPORT_DONE.job, id: 'x2' } };
    act(() => {
      socket.push({ seq: 6, type: 'finished', outcome: 'succeeded', step: 3, output_dir: '/tmp/x2' });
      socket.push({ type: 'end', status: 'succeeded', last_seq: 6 });
    });
    await waitFor(() => expect(screen.getAllByTestId('artifact-row')).toHaveLength(5));
    expect(screen.queryByTestId('export-live')).not.toBeInTheDocument();
  });
});
