import { describe, expect, it } from 'vitest';
import { DEFAULT_FORM, formToSpec } from './form';
import { STAGES } from '../test/stages';
import { checkValue, enumValues, SPEC_KEYS, validateSpec } from './schema';

const valid = () => formToSpec({ ...DEFAULT_FORM, model: 'tiny', datasets: ['identity'], compute_type: 'fp32' });

function messages(spec: Record<string, unknown>, stages = STAGES): Record<string, string> {
  return Object.fromEntries(validateSpec(spec, stages).map((p) => [p.field, p.message]));
}

describe('spec checks from the OpenAPI schema', () => {
  it('knows every section key from openapi.json', () => {
    expect(SPEC_KEYS.learning_rate.section).toBe('training');
    expect(SPEC_KEYS.lora_rank.section).toBe('method');
    expect(SPEC_KEYS.model_name_or_path.required).toBe(true);
    expect(enumValues('lr_scheduler_type')).toContain('cosine');
  });

  it('accepts the form defaults', () => {
    expect(validateSpec(valid())).toEqual([]);
  });

  it('reports values outside the schema in the server wording', () => {
    const found = messages({ ...valid(), learning_rate: -1, lora_rank: 0, lr_scheduler_type: 'wavy', cutoff_len: 1.5, lora_dropout: 1 });
    expect(found.learning_rate).toBe('Input should be greater than 0 (got -1)');
    expect(found.lora_rank).toBe('Input should be greater than 0 (got 0)');
    expect(found.lr_scheduler_type).toMatch(/^Input should be 'linear', 'cosine', .* or 'warmup_stable_decay' \(got "wavy"\)$/);
    expect(found.cutoff_len).toBe('Input should be a valid integer (got 1.5)');
    expect(found.lora_dropout).toBe('Input should be less than 1 (got 1)');
    expect(messages({ ...valid(), learning_rate: Number.NaN }).learning_rate).toMatch(/valid number/);
  });

  it('reports unknown keys with a suggestion, and missing required ones', () => {
    const { model_name_or_path: _model, ...rest } = valid();
    void _model;
    const found = messages({ ...rest, lerning_rate: 1 });
    expect(found.lerning_rate).toBe("unknown key; did you mean 'learning_rate'?");
    expect(found.model_name_or_path).toBe('is required');
  });

  it('accepts every stage of the catalog', () => {
    for (const stage of STAGES) expect(messages({ ...valid(), stage: stage.name })).toEqual({});
  });

  it("names the catalog's stages for a stage it does not list", () => {
    expect(messages({ ...valid(), stage: 'dpo' }, STAGES.filter((stage) => stage.name !== 'dpo')).stage).toBe(
      "Input should be 'sft', 'pt', 'rm', 'kto', 'ppo' or 'grpo' (got \"dpo\")",
    );
    const future = [...STAGES, { ...STAGES[0], name: 'orpo_next' }];
    expect(messages({ ...valid(), stage: 'orpo_next' }, future)).toEqual({});
    expect(messages({ ...valid(), stage: 'nope' }, future).stage).toMatch(/'grpo' or 'orpo_next' \(got "nope"\)$/);
    // without the catalog (not loaded yet) the schema's own list applies
    expect(messages({ ...valid(), stage: 'nope' }, []).stage).toMatch(/^Input should be 'sft', .* \(got "nope"\)$/);
  });

  it('checks the GRPO reward functions against their schema', () => {
    expect(messages({ ...valid(), stage: 'grpo', reward_funcs: [{ name: 'exact_match', weight: 2, args: { strip: true } }] })).toEqual({});
    expect(messages({ ...valid(), stage: 'grpo', reward_funcs: [{ name: 'length' }, { name: '' }] }).reward_funcs).toBe(
      'item 2: name: String should have at least 1 character',
    );
    expect(messages({ ...valid(), stage: 'grpo', reward_funcs: [{ name: 'regex', args: '{"pattern": ' }] }).reward_funcs).toBe(
      'item 1: args: Input should be a valid dictionary',
    );
    expect(messages({ ...valid(), stage: 'grpo', reward_funcs: [{ name: 'regex', wieght: 1 }] }).reward_funcs).toBe('item 1: wieght: Extra inputs are not permitted');
  });

  it('applies the rules exported from the server: unsupported options, datasets', () => {
    const found = messages({ ...valid(), quantization_bit: 4, dataset: '' });
    expect(found.quantization_bit).toBe('is a LLaMA-Factory option Tunery does not support; leave it at None');
    expect(found.dataset).toBe('is required to train (names from dataset_info.json)');
  });

  it('checks nullable unions and lists', () => {
    expect(checkValue(SPEC_KEYS.lora_alpha.schema, null)).toBeNull();
    expect(checkValue(SPEC_KEYS.lora_alpha.schema, 'x')).toMatch(/valid integer/);
    expect(checkValue(SPEC_KEYS.lora_target.schema, 'q_proj,v_proj')).toBeNull();
    expect(checkValue(SPEC_KEYS.lora_target.schema, ['q_proj'])).toBeNull();
  });
});
