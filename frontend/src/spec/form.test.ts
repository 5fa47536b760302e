import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { STAGES } from '../test/stages';
import { stageOptionKeys } from '../stages/catalog';
import { DEFAULT_FORM, formToSpec, importYaml, ImportError, type RunForm, specToYaml } from './form';

const LLAMA3_LORA_SFT = `### model
model_name_or_path: meta-llama/Meta-Llama-3-8B-Instruct
trust_remote_code: true

### method
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all

### dataset
dataset: identity,alpaca_en_demo
template: llama3
cutoff_len: 2048
max_samples: 1000
overwrite_cache: true
preprocessing_num_workers: 16

### output
output_dir: saves/llama3-8b/lora/sft
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true

### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
resume_from_checkpoint: null
`;

function form(changes: Partial<RunForm>): RunForm {
  return { ...DEFAULT_FORM, model: 'tiny', datasets: ['identity'], ...changes };
}

describe('form -> spec -> YAML', () => {
  it('writes the LoRA SFT spec with LLaMA-Factory keys', () => {
    const yaml = specToYaml(formToSpec(form({ template: 'llama3', learning_rate: 2e-4 })));
    const spec = parse(yaml);
    expect(spec).toMatchObject({
      model_name_or_path: 'tiny',
      template: 'llama3',
      stage: 'sft',
      finetuning_type: 'lora',
      lora_rank: 8,
      lora_target: 'all',
      dataset: 'identity',
      learning_rate: 2e-4,
      bf16: true,
      cutoff_len: 2048,
    });
    expect(spec).not.toHaveProperty('freeze_trainable_layers');
    expect(spec).not.toHaveProperty('val_size');
    expect(yaml.split('\n')[0]).toBe('model_name_or_path: tiny');
  });

  it('writes only the options of the chosen method', () => {
    const freeze = formToSpec(form({ finetuning_type: 'freeze', freeze_trainable_layers: -3 }));
    expect(freeze).toMatchObject({ finetuning_type: 'freeze', freeze_trainable_layers: -3 });
    expect(freeze).not.toHaveProperty('lora_rank');
    const dora = formToSpec(form({ use_dora: true, lora_alpha: 32, loraplus_lr_ratio: 16, quantization_bit: '4' }));
    expect(dora).toMatchObject({ use_dora: true, lora_alpha: 32, loraplus_lr_ratio: 16, quantization_bit: 4 });
  });

  it("writes the chosen stage's own options, not other stages' ones nor defaults", () => {
    const options = { pref_beta: 0.2, pref_loss: 'simpo', simpo_gamma: 1, ppo_epochs: 2, ref_model: '/models/ref', num_generations: 8 };
    const dpo = formToSpec(form({ stage: 'dpo', options }), stageOptionKeys(STAGES, 'dpo'));
    expect(dpo).toMatchObject({ stage: 'dpo', pref_beta: 0.2, pref_loss: 'simpo', simpo_gamma: 1 });
    // ppo/grpo keys do not apply; SimPO needs no reference model
    for (const key of ['ppo_epochs', 'num_generations', 'ref_model']) expect(dpo).not.toHaveProperty(key);
    const sigmoid = formToSpec(form({ stage: 'dpo', options: { ...options, pref_loss: 'sigmoid', pref_ftx: 0 } }), stageOptionKeys(STAGES, 'dpo'));
    expect(sigmoid).toMatchObject({ ref_model: '/models/ref' });
    // sigmoid is the default loss, 0 the default SFT weight; simpo_gamma only applies to simpo
    for (const key of ['pref_loss', 'pref_ftx', 'simpo_gamma']) expect(sigmoid).not.toHaveProperty(key);
    const sft = formToSpec(form({ options }), stageOptionKeys(STAGES, 'sft'));
    for (const key of Object.keys(options)) expect(sft).not.toHaveProperty(key);
  });

  it('sends the reward model to GRPO only when a reward function reads it, and its adapters only with type full', () => {
    const grpo = stageOptionKeys(STAGES, 'grpo');
    const options = { reward_funcs: [{ name: 'exact_match' }], reward_model: '/rm', reward_model_adapters: '/rm-lora' };
    expect(formToSpec(form({ stage: 'grpo', options }), grpo)).not.toHaveProperty('reward_model');
    const withModel = { ...options, reward_funcs: [{ name: 'exact_match' }, { name: 'reward_model', weight: 0.5 }] };
    expect(formToSpec(form({ stage: 'grpo', options: withModel }), grpo)).toMatchObject({ reward_model: '/rm' });
    expect(formToSpec(form({ stage: 'grpo', options: withModel }), grpo)).not.toHaveProperty('reward_model_adapters');
    const full = formToSpec(form({ stage: 'ppo', options: { ...options, reward_model_type: 'full' } }), stageOptionKeys(STAGES, 'ppo'));
    expect(full).toMatchObject({ reward_model: '/rm', reward_model_type: 'full', reward_model_adapters: '/rm-lora' });
    expect(full).not.toHaveProperty('reward_funcs');
  });

  it('turns a validation split into evaluation steps, and 0 GPUs into use_cpu', () => {
    const spec = formToSpec(form({ val_size: 0.1, eval_steps: 20, gpus: 0, compute_type: 'fp32', datasets: ['a', 'b@2'] }));
    expect(spec).toMatchObject({ val_size: 0.1, eval_strategy: 'steps', eval_steps: 20, use_cpu: true, dataset: 'a,b@2' });
    expect(spec).not.toHaveProperty('bf16');
    expect(spec).not.toHaveProperty('fp16');
  });

  it('passes extra keys through without overriding the form', () => {
    const spec = formToSpec(form({ extra: { max_samples: 100, stage: 'pt' } }));
    expect(spec.max_samples).toBe(100);
    expect(spec.stage).toBe('sft');
  });
});

describe('LLaMA-Factory YAML import', () => {
  it('reads an example training YAML into the form', () => {
    const { form: imported, extra, unknown } = importYaml(LLAMA3_LORA_SFT);
    expect(imported).toMatchObject({
      model: 'meta-llama/Meta-Llama-3-8B-Instruct',
      stage: 'sft',
      finetuning_type: 'lora',
      lora_rank: 8,
      lora_target: 'all',
      datasets: ['identity', 'alpaca_en_demo'],
      template: 'llama3',
      cutoff_len: 2048,
      learning_rate: 1e-4,
      num_train_epochs: 3,
      lr_scheduler_type: 'cosine',
      warmup_ratio: 0.1,
      compute_type: 'bf16',
      gradient_accumulation_steps: 8,
    });
    expect(extra.sort()).toEqual(
      ['ddp_timeout', 'max_samples', 'output_dir', 'overwrite_cache', 'overwrite_output_dir', 'plot_loss', 'preprocessing_num_workers', 'trust_remote_code'].sort(),
    );
    expect(imported.extra.max_samples).toBe(1000);
    expect(unknown).toEqual([]);
    expect(imported.extra).not.toHaveProperty('resume_from_checkpoint');
  });

  it('keeps unknown keys and reads aliases and nested sections', () => {
    const { form: imported, unknown } = importYaml(
      'model:\n  model_name_or_path: m\nmethod:\n  finetuning_type: freeze\nlora_targets: q_proj,v_proj\nlerning_rate: 3\nfp16: true\n',
    );
    expect(imported.model).toBe('m');
    expect(imported.finetuning_type).toBe('freeze');
    expect(imported.lora_target).toBe('q_proj,v_proj');
    expect(imported.compute_type).toBe('fp16');
    expect(unknown).toEqual(['lerning_rate']);
    expect(imported.extra.lerning_rate).toBe(3);
  });

  it('round-trips: form -> YAML -> form gives the same spec', () => {
    const original = form({ template: 'qwen', finetuning_type: 'lora', use_rslora: true, val_size: 0.2, eval_steps: 5, packing: true, neftune_noise_alpha: 5, gpus: 0 });
    const yaml = specToYaml(formToSpec(original));
    const again = importYaml(yaml).form;
    expect(formToSpec(again)).toEqual(formToSpec(original));
  });

  it("reads the stage's options into the form and keeps other stages' keys as extra settings", () => {
    const { form: imported, extra } = importYaml(
      'model_name_or_path: m\nstage: grpo\ndataset: d\nreward_funcs: exact_match,length\nnum_generations: 8\npref_beta: 0.3\n',
      DEFAULT_FORM,
      STAGES,
    );
    expect(imported.options).toEqual({ reward_funcs: [{ name: 'exact_match' }, { name: 'length' }], num_generations: 8 });
    expect(imported.extra).toEqual({ pref_beta: 0.3 });
    expect(extra).toEqual(['pref_beta']);
    const again = formToSpec(imported, stageOptionKeys(STAGES, 'grpo'));
    expect(again).toMatchObject({ stage: 'grpo', num_generations: 8, pref_beta: 0.3, reward_funcs: [{ name: 'exact_match' }, { name: 'length' }] });
  });

  it('explains YAML that is not a mapping', () => {
    expect(() => importYaml('- a\n- b')).toThrow(ImportError);
    expect(() => importYaml('key: [unclosed')).toThrow(/not valid YAML/);
  });
});
