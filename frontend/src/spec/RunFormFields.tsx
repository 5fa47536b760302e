// The fields of the new-run form, grouped as LLaMA-Factory's board groups them.
import {
  Accordion,
  ActionIcon,
  Autocomplete,
  Button,
  Checkbox,
  Code,
  Fieldset,
  Group,
  MultiSelect,
  NumberInput,
  SegmentedControl,
  Select,
  SimpleGrid,
  Stack,
  Switch,
  Table,
  Text,
  TextInput,
} from '@mantine/core';
import { IconEye, IconTrash } from '@tabler/icons-react';
import { memo, type ReactNode, useEffect, useMemo, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { useStageText } from '../i18n/stageText';
import { TEMPLATE_OPTIONS } from '../pages/Models';
import { stageInfo, type StageInfo } from '../stages/catalog';
import type { RunForm } from './form';
import { enumValues, UNSUPPORTED } from './schema';
import { type RewardModelChoice, StageOptionFields } from './StageOptionFields';

export type FieldErrors = Record<string, string[]>;

/** spec keys whose problems show on another form field */
export const FIELD_OF: Record<string, keyof RunForm> = {
  model_name_or_path: 'model',
  dataset: 'datasets',
  bf16: 'compute_type',
  fp16: 'compute_type',
  eval_strategy: 'val_size',
  use_cpu: 'gpus',
};

const OPTIMIZERS = ['adamw_torch', 'adamw_torch_fused', 'adamw_8bit', 'paged_adamw_8bit', 'adafactor', 'sgd'];

export interface Choice {
  value: string;
  label: string;
}

interface Props {
  form: RunForm;
  update: <K extends keyof RunForm>(key: K, value: RunForm[K]) => void;
  errors: FieldErrors;
  models: Choice[];
  datasets: Choice[];
  experiments: Choice[];
  experimentId: string | null;
  onExperiment: (id: string | null) => void;
  onPreviewDataset: (name: string) => void;
  /** the stage catalog (GET /api/stages) */
  stages: StageInfo[];
  /** finished reward-model runs, offered for reward_model */
  rewardModels: RewardModelChoice[];
  /** chosen datasets that cannot feed the chosen stage, with the stages they can feed */
  mismatched: { name: string; stages: string[] }[];
}

function toNumber(value: number | string, nullable: boolean): number | null {
  if (typeof value === 'number') return value;
  if (value.trim() === '') return nullable ? null : Number.NaN;
  const parsed = Number(value);
  return Number.isFinite(parsed) ? parsed : Number.NaN;
}

/** A text box for numbers written as 1e-4 or 0.0001; what cannot be read becomes NaN (reported as invalid). */
function ScientificInput({ label, value, onChange, error, testId }: { label: string; value: number; onChange: (v: number) => void; error?: string; testId?: string }) {
  const [text, setText] = useState(Number.isNaN(value) ? '' : String(value));
  useEffect(() => {
    // follow outside changes (import, preset) but keep what the user is typing
    setText((old) => {
      const parsed = old.trim() === '' ? Number.NaN : Number(old);
      if (Number.isNaN(value)) return Number.isFinite(parsed) ? '' : old;
      return parsed === value ? old : String(value);
    });
  }, [value]);
  return (
    <TextInput
      label={label}
      value={text}
      inputMode="decimal"
      error={error}
      data-testid={testId}
      onChange={(e) => {
        const next = e.currentTarget.value;
        setText(next);
        const parsed = next.trim() === '' ? Number.NaN : Number(next);
        onChange(Number.isFinite(parsed) ? parsed : Number.NaN);
      }}
    />
  );
}

/** A part of the form that renders again only when its inputs change (typing stays fast in a long form). */
const Section = memo(
  function Section({ render }: { deps: unknown[]; render: () => ReactNode }) {
    return <>{render()}</>;
  },
  (before, after) => before.deps.length === after.deps.length && before.deps.every((dep, i) => Object.is(dep, after.deps[i])),
);

export function RunFormFields({ form, update, errors, models, datasets, experiments, experimentId, onExperiment, onPreviewDataset, stages, rewardModels, mismatched }: Props) {
  const { t, i18n } = useTranslation();
  const text = useStageText();
  const stage = stageInfo(stages, form.stage);
  const errorsKey = JSON.stringify(errors);
  const common = [errorsKey, i18n.language, update];
  const pick = (...keys: (keyof RunForm)[]) => [...common, ...keys.map((key) => form[key])];
  const err = (field: string): string | undefined => {
    const messages = Object.entries(errors)
      .filter(([key]) => key === field || FIELD_OF[key] === field || key.startsWith(`${field}[`))
      .flatMap(([, list]) => list);
    return messages.length ? messages.join('; ') : undefined;
  };
  const num = <K extends keyof RunForm>(key: K, props: { min?: number; max?: number; step?: number; nullable?: boolean; decimalScale?: number; label?: string } = {}) => (
    <NumberInput
      label={props.label ?? t(`form.${String(key)}`)}
      value={(form[key] as number | null) ?? ''}
      onChange={(value) => update(key, toNumber(value, Boolean(props.nullable)) as RunForm[K])}
      min={props.min}
      max={props.max}
      step={props.step}
      decimalScale={props.decimalScale}
      error={err(String(key))}
      data-testid={`field-${String(key)}`}
    />
  );
  const unsupported = (key: string) => key in UNSUPPORTED;
  const modelChoices = useMemo(
    () => (form.model && !models.some((m) => m.value === form.model) ? [...models, { value: form.model, label: form.model }] : models),
    [models, form.model],
  );
  const datasetChoices = useMemo(
    () => [...datasets, ...form.datasets.filter((name) => !datasets.some((d) => d.value === name)).map((name) => ({ value: name, label: name }))],
    [datasets, form.datasets],
  );
  return (
    <Stack gap="md">
      <Section
        deps={[...pick('name'), experimentId, experiments, onExperiment]}
        render={() => (
          <Fieldset legend={t('form.sectionRun')}>
            <SimpleGrid cols={{ base: 1, sm: 2 }}>
              <TextInput label={t('form.name')} value={form.name} onChange={(e) => update('name', e.currentTarget.value)} error={err('name')} data-testid="field-name" />
              <Select label={t('form.experiment')} data={experiments} value={experimentId} onChange={onExperiment} clearable placeholder={t('form.noExperiment')} error={err('experiment_id')} />
            </SimpleGrid>
          </Fieldset>
        )}
      />

      <Section
        deps={[...pick('model', 'template'), modelChoices]}
        render={() => (
          <Fieldset legend={t('form.sectionModel')}>
            <SimpleGrid cols={{ base: 1, sm: 2 }}>
              <Select
                label={t('form.model')}
                data={modelChoices}
                value={form.model || null}
                onChange={(value) => update('model', value ?? '')}
                searchable
                required
                allowDeselect={false}
                error={err('model')}
                nothingFoundMessage={t('models.none')}
                data-testid="field-model"
              />
              <Select
                label={t('form.template')}
                placeholder={t('form.templateDefault')}
                data={TEMPLATE_OPTIONS}
                value={form.template || null}
                onChange={(value) => update('template', value ?? '')}
                searchable
                clearable
                error={err('template')}
                data-testid="field-template"
              />
            </SimpleGrid>
          </Fieldset>
        )}
      />

      <Section
        deps={[...pick('stage', 'quantization_bit', 'finetuning_type', 'lora_rank', 'lora_alpha', 'lora_dropout', 'lora_target', 'use_dora', 'use_rslora', 'pissa_init', 'freeze_trainable_layers', 'freeze_trainable_modules'), stages]}
        render={() => (
          <Fieldset legend={t('form.sectionMethod')}>
            <Stack>
              <SimpleGrid cols={{ base: 1, sm: 2 }}>
                <Select
                  label={t('form.stage')}
                  description={stage ? text(stage).summary : undefined}
                  data={[
                    ...stages.map((info) => ({ value: info.name, label: `${text(info).title} (${info.name})` })),
                    // a stage the catalog does not know (an imported YAML): shown, and reported by the checks
                    ...(stage || !form.stage ? [] : [{ value: form.stage, label: form.stage }]),
                  ]}
                  value={form.stage}
                  onChange={(value) => value && update('stage', value)}
                  allowDeselect={false}
                  error={err('stage')}
                  placeholder={stages.length ? undefined : t('common.loading')}
                  data-testid="field-stage"
                />
                <Select
                  label={t('form.quantization')}
                  description={unsupported('quantization_bit') ? t('form.unsupportedYet') : t('form.quantizationHint')}
                  data={[
                    { value: '', label: t('form.none') },
                    { value: '8', label: '8-bit', disabled: unsupported('quantization_bit') },
                    { value: '4', label: `4-bit (QLoRA)`, disabled: unsupported('quantization_bit') },
                  ]}
                  value={form.quantization_bit}
                  onChange={(value) => update('quantization_bit', value ?? '')}
                  allowDeselect={false}
                  error={err('quantization_bit')}
                  data-testid="field-quantization_bit"
                />
              </SimpleGrid>
              {stage && (
                <Text size="sm" c="dimmed" data-testid="stage-data-help">
                  {t('form.stageData', { help: text(stage).data_help })}
                </Text>
              )}
              <Stack gap={4}>
                <Text size="sm" fw={500}>
                  {t('form.finetuning_type')}
                </Text>
                <SegmentedControl
                  data={[
                    { value: 'lora', label: 'LoRA' },
                    { value: 'freeze', label: t('form.freeze') },
                    { value: 'full', label: t('form.full') },
                  ]}
                  value={form.finetuning_type}
                  onChange={(value) => update('finetuning_type', value as RunForm['finetuning_type'])}
                  data-testid="field-finetuning_type"
                />
                {err('finetuning_type') && <Text c="red" size="xs">{err('finetuning_type')}</Text>}
              </Stack>
              {form.finetuning_type === 'lora' && (
                <>
                  <SimpleGrid cols={{ base: 2, sm: 4 }}>
                    {num('lora_rank', { min: 1 })}
                    {num('lora_alpha', { min: 1, nullable: true })}
                    {num('lora_dropout', { min: 0, max: 0.99, step: 0.05, decimalScale: 3 })}
                    <TextInput label={t('form.lora_target')} value={form.lora_target} onChange={(e) => update('lora_target', e.currentTarget.value)} error={err('lora_target')} data-testid="field-lora_target" />
                  </SimpleGrid>
                  <Group gap="lg">
                    <Checkbox label="DoRA" checked={form.use_dora} onChange={(e) => update('use_dora', e.currentTarget.checked)} error={err('use_dora')} data-testid="field-use_dora" />
                    <Checkbox label="rsLoRA" checked={form.use_rslora} onChange={(e) => update('use_rslora', e.currentTarget.checked)} error={err('use_rslora')} />
                    <Checkbox label={t('form.pissa')} checked={form.pissa_init} onChange={(e) => update('pissa_init', e.currentTarget.checked)} error={err('pissa_init')} />
                  </Group>
                </>
              )}
              {form.finetuning_type === 'freeze' && (
                <SimpleGrid cols={{ base: 1, sm: 2 }}>
                  {num('freeze_trainable_layers')}
                  <TextInput label={t('form.freeze_trainable_modules')} value={form.freeze_trainable_modules} onChange={(e) => update('freeze_trainable_modules', e.currentTarget.value)} error={err('freeze_trainable_modules')} />
                </SimpleGrid>
              )}
            </Stack>
          </Fieldset>
        )}
      />

      <Section
        deps={[...pick('stage', 'options'), stages, rewardModels]}
        render={() =>
          stage && stage.options.length > 0 ? (
            <Fieldset legend={t('form.sectionStage', { stage: text(stage).title })} data-testid="stage-fieldset">
              <StageOptionFields
                stageKeys={stage.options}
                values={form.options}
                onChange={(key, value) => update('options', { ...form.options, [key]: value })}
                error={err}
                rewardModels={rewardModels}
              />
            </Fieldset>
          ) : null
        }
      />

      <Section
        deps={[...pick('datasets', 'cutoff_len', 'val_size', 'eval_steps', 'stage'), datasetChoices, onPreviewDataset, mismatched]}
        render={() => (
          <Fieldset legend={t('form.sectionData')}>
            <Stack>
              <MultiSelect
                label={t('form.datasets')}
                data={datasetChoices}
                value={form.datasets}
                onChange={(value) => update('datasets', value)}
                searchable
                required
                error={err('datasets')}
                nothingFoundMessage={t('datasets.none')}
                data-testid="field-datasets"
              />
              {mismatched.map(({ name, stages: fed }) => (
                <Text key={name} size="xs" c="orange" data-testid="dataset-stage-warning">
                  {t('form.datasetStageMismatch', { name, stage: form.stage, stages: fed.join(', ') })}
                </Text>
              ))}
              {form.datasets.length > 0 && (
                <Group gap="xs">
                  {form.datasets.map((name) => (
                    <Button key={name} size="compact-xs" variant="light" leftSection={<IconEye size={14} />} onClick={() => onPreviewDataset(name)} data-testid={`preview-dataset-${name}`}>
                      {t('form.previewDataset', { name })}
                    </Button>
                  ))}
                </Group>
              )}
              <SimpleGrid cols={{ base: 2, sm: 3 }}>
                {num('cutoff_len', { min: 1 })}
                {num('val_size', { min: 0, step: 0.05, decimalScale: 4 })}
                {form.val_size > 0 && num('eval_steps', { min: 1 })}
              </SimpleGrid>
            </Stack>
          </Fieldset>
        )}
      />

      <Section
        deps={pick('learning_rate', 'num_train_epochs', 'max_steps', 'per_device_train_batch_size', 'gradient_accumulation_steps', 'lr_scheduler_type', 'warmup_ratio', 'compute_type', 'gpus')}
        render={() => (
          <Fieldset legend={t('form.sectionTraining')}>
            <SimpleGrid cols={{ base: 2, sm: 3 }}>
              <ScientificInput label={t('form.learning_rate')} value={form.learning_rate} onChange={(v) => update('learning_rate', v)} error={err('learning_rate')} testId="field-learning_rate" />
              {num('num_train_epochs', { min: 0, step: 1, decimalScale: 2 })}
              {num('max_steps', { min: -1 })}
              {num('per_device_train_batch_size', { min: 1 })}
              {num('gradient_accumulation_steps', { min: 1 })}
              <Select
                label={t('form.lr_scheduler_type')}
                data={enumValues('lr_scheduler_type')}
                value={form.lr_scheduler_type}
                onChange={(value) => value && update('lr_scheduler_type', value)}
                allowDeselect={false}
                error={err('lr_scheduler_type')}
              />
              {num('warmup_ratio', { min: 0, max: 1, step: 0.05, decimalScale: 3 })}
              <Select
                label={t('form.compute_type')}
                data={[
                  { value: 'bf16', label: 'bf16' },
                  { value: 'fp16', label: 'fp16' },
                  { value: 'fp32', label: 'fp32' },
                ]}
                value={form.compute_type}
                onChange={(value) => value && update('compute_type', value as RunForm['compute_type'])}
                allowDeselect={false}
                error={err('compute_type')}
              />
              {num('gpus', { min: 0, max: 64, label: t('form.gpus') })}
            </SimpleGrid>
            <Text size="xs" c="dimmed" mt={4}>
              {t('form.gpusHint')}
            </Text>
          </Fieldset>
        )}
      />

      <Section
        deps={pick('optim', 'neftune_noise_alpha', 'loraplus_lr_ratio', 'logging_steps', 'save_steps', 'packing')}
        render={() => (
          <Accordion variant="separated" defaultValue={null}>
            <Accordion.Item value="advanced">
              <Accordion.Control data-testid="advanced-toggle">{t('form.sectionAdvanced')}</Accordion.Control>
              <Accordion.Panel>
                <Stack>
                  <SimpleGrid cols={{ base: 2, sm: 3 }}>
                    <Autocomplete label={t('form.optim')} data={OPTIMIZERS} value={form.optim} onChange={(value) => update('optim', value)} error={err('optim')} />
                    {num('neftune_noise_alpha', { min: 0, nullable: true, step: 1, decimalScale: 3 })}
                    {num('loraplus_lr_ratio', { min: 0, nullable: true, step: 1, decimalScale: 3 })}
                    {num('logging_steps', { min: 1 })}
                    {num('save_steps', { min: 1 })}
                  </SimpleGrid>
                  <Switch label={t('form.packing')} checked={form.packing} onChange={(e) => update('packing', e.currentTarget.checked)} error={err('packing')} data-testid="field-packing" />
                </Stack>
              </Accordion.Panel>
            </Accordion.Item>
          </Accordion>
        )}
      />

      {Object.keys(form.extra).length > 0 && (
        <Fieldset legend={t('form.sectionExtra')} data-testid="extra-keys">
          <Text size="xs" c="dimmed" mb="xs">
            {t('form.extraHint')}
          </Text>
          <Table>
            <Table.Tbody>
              {Object.entries(form.extra).map(([key, value]) => (
                <Table.Tr key={key}>
                  <Table.Td>
                    <Code>{key}</Code>
                  </Table.Td>
                  <Table.Td>
                    <Code>{JSON.stringify(value)}</Code>
                    {err(key) && (
                      <Text c="red" size="xs">
                        {err(key)}
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td w={40}>
                    <ActionIcon
                      variant="subtle"
                      color="red"
                      aria-label={t('form.removeKey', { key })}
                      onClick={() => {
                        const next = { ...form.extra };
                        delete next[key];
                        update('extra', next);
                      }}
                    >
                      <IconTrash size={16} />
                    </ActionIcon>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Fieldset>
      )}
    </Stack>
  );
}
