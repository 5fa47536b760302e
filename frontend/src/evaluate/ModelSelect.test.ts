import { describe, expect, it } from 'vitest';
import { modelOptions, parseServedId, servedKind, servedLabel } from './ModelSelect';

describe('served model ids', () => {
  it('reads base models, fine-tunes and checkpoints (a base name may hold colons)', () => {
    expect(parseServedId('tiny')).toEqual({ kind: 'base', base: 'tiny' });
    expect(parseServedId('ft:tiny:demo:j1')).toEqual({ kind: 'finetune', base: 'tiny', jobId: 'j1' });
    expect(parseServedId('ft:org:model:demo:j1:ckpt-50')).toEqual({ kind: 'checkpoint', base: 'org:model', jobId: 'j1', step: 50 });
    expect(parseServedId('ft:broken')).toEqual({ kind: 'base', base: 'ft:broken' });
  });

  it('reads exports: a GGUF file by its suffix, a merged model by its job being an export', () => {
    expect(parseServedId('ft:tiny:demo:x1:gguf-q4_k_m')).toEqual({ kind: 'export', base: 'tiny', jobId: 'x1', gguf: 'Q4_K_M' });
    expect(servedKind('ft:tiny:demo:x1', new Set(['x1']))).toBe('export');
    expect(servedKind('ft:tiny:demo:j1', new Set(['x1']))).toBe('finetune');
    expect(servedLabel('ft:tiny:demo:x1:gguf-f16', { x1: 'chat' }, String)).toBe('chat · GGUF F16');
    const models = [{ id: 'tiny' }, { id: 'ft:tiny:demo:j1' }, { id: 'ft:tiny:demo:x1' }, { id: 'ft:tiny:demo:x1:gguf-f16' }];
    const names = { j1: 'run', x1: 'chat' };
    expect(modelOptions(models, names, (kind) => kind, String, { exportJobs: new Set(['x1']) }).map((group) => [group.group, group.items.map((item) => item.value)])).toEqual([
      ['base', ['tiny']],
      ['finetune', ['ft:tiny:demo:j1']],
      ['export', ['ft:tiny:demo:x1', 'ft:tiny:demo:x1:gguf-f16']],
    ]);
    // only the kinds asked for
    expect(modelOptions(models, names, (kind) => kind, String, { exportJobs: new Set(['x1']), kinds: ['finetune'] }).map((group) => group.group)).toEqual(['finetune']);
  });

  it('labels them by run name, grouped, reward models left out, labels unique', () => {
    const names = { j1: 'first run', j2: 'first run' };
    const step = (n: number) => `step ${n}`;
    expect(servedLabel('ft:tiny:demo:abcdef123456', {}, step)).toBe('abcdef12 (tiny)');
    const groups = modelOptions(
      [{ id: 'tiny' }, { id: 'ft:tiny:demo:j1' }, { id: 'ft:tiny:demo:j2' }, { id: 'ft:tiny:demo:j1:ckpt-5' }, { id: 'rm', reward_model: true }],
      names,
      (kind) => kind,
      step,
    );
    expect(groups).toEqual([
      { group: 'base', items: [{ value: 'tiny', label: 'tiny' }] },
      { group: 'finetune', items: [{ value: 'ft:tiny:demo:j1', label: 'first run (tiny)' }, { value: 'ft:tiny:demo:j2', label: 'first run (tiny) · j2' }] },
      { group: 'checkpoint', items: [{ value: 'ft:tiny:demo:j1:ckpt-5', label: 'first run · step 5' }] },
    ]);
  });
});
