import { describe, expect, it } from 'vitest';
import { modelOptions, parseServedId, servedLabel } from './ModelSelect';

describe('served model ids', () => {
  it('reads base models, fine-tunes and checkpoints (a base name may hold colons)', () => {
    expect(parseServedId('tiny')).toEqual({ kind: 'base', base: 'tiny' });
    expect(parseServedId('ft:tiny:demo:j1')).toEqual({ kind: 'finetune', base: 'tiny', jobId: 'j1' });
    expect(parseServedId('ft:org:model:demo:j1:ckpt-50')).toEqual({ kind: 'checkpoint', base: 'org:model', jobId: 'j1', step: 50 });
    expect(parseServedId('ft:broken')).toEqual({ kind: 'base', base: 'ft:broken' });
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
