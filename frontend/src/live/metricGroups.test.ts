import { describe, expect, it } from 'vitest';
import { metricPoints } from './series';
import { groupOf, metricGroups, metricKeys, splitEvalKey } from './metricGroups';

describe('metric groups', () => {
  it('groups by prefix, keeps eval metrics with their twin, the loss first and training dynamics last', () => {
    const groups = metricGroups([
      'grad_norm', 'lr', 'kl', 'rewards/chosen', 'loss', 'eval_loss', 'value_loss', 'policy_loss', 'eval_rewards/chosen',
      'rewards/exact_match/mean', 'reward', 'reward_std', 'completions/mean_length', 'eval_runtime', 'eval_samples_per_second', 'accuracy',
    ]);
    expect(groups).toEqual([
      { id: 'loss', keys: ['loss', 'eval_loss'] },
      { id: 'losses', keys: ['value_loss', 'policy_loss'] },
      { id: 'kl', keys: ['kl'] },
      { id: 'rewards', keys: ['rewards/chosen', 'rewards/exact_match/mean', 'eval_rewards/chosen'] },
      { id: 'reward', keys: ['reward', 'reward_std'] },
      { id: 'completions', keys: ['completions/mean_length'] },
      { id: 'accuracy', keys: ['accuracy'] },
      { id: 'lr', keys: ['lr'] },
      { id: 'grad', keys: ['grad_norm'] },
      { id: 'speed', keys: ['eval_runtime', 'eval_samples_per_second'] },
    ]);
    expect(groupOf('eval_logps/rejected')).toBe('logps');
  });

  it("takes a progress event's stage metrics as points", () => {
    const points = metricPoints([
      { seq: 1, type: 'progress', step: 1, loss: 2, lr: 1e-4, metrics: { 'rewards/margins': 0.5, kl: 0.1, bad: 'x' } },
      { seq: 2, type: 'eval', step: 1, metrics: { eval_loss: 1.9 } },
    ]);
    expect(points).toEqual([{ step: 1, loss: 2, lr: 1e-4, 'rewards/margins': 0.5, kl: 0.1, eval_loss: 1.9 }]);
    expect(metricKeys(points)).toEqual(['loss', 'lr', 'rewards/margins', 'kl', 'eval_loss']);
  });
});

describe('metrics of several eval sets', () => {
  it('puts eval_<set>_<metric> with its metric, the set named', () => {
    const sets = ['identity', 'alpaca_en_demo'];
    expect(splitEvalKey('eval_alpaca_en_demo_loss', sets)).toEqual({ metric: 'loss', dataset: 'alpaca_en_demo' });
    expect(splitEvalKey('eval_identity_runtime', sets)).toEqual({ metric: 'runtime', dataset: 'identity' });
    expect(splitEvalKey('eval_identity_rewards/chosen', sets)).toEqual({ metric: 'rewards/chosen', dataset: 'identity' });
    expect(splitEvalKey('eval_loss', sets)).toEqual({ metric: 'loss' });
    // a set's loss is recognised without the names too
    expect(splitEvalKey('eval_other_set_loss')).toEqual({ metric: 'loss', dataset: 'other_set' });
    expect(metricGroups(['loss', 'eval_identity_loss', 'eval_alpaca_en_demo_loss', 'eval_identity_runtime', 'eval_alpaca_en_demo_accuracy', 'accuracy'], sets)).toEqual([
      { id: 'loss', keys: ['loss', 'eval_identity_loss', 'eval_alpaca_en_demo_loss'] },
      { id: 'accuracy', keys: ['accuracy', 'eval_alpaca_en_demo_accuracy'] },
      { id: 'speed', keys: ['eval_identity_runtime'] },
    ]);
  });
});
