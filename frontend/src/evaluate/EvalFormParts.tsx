// Parts of the new-evaluation form: generation settings, the judge, the benchmark.
import { Autocomplete, Badge, Group, NumberInput, SegmentedControl, Select, SimpleGrid, Stack, Switch, Text, Textarea, TextInput } from '@mantine/core';
import { useTranslation } from 'react-i18next';
import { useEvalText } from '../i18n/evalText';
import type { EvalForm, GenerationKey } from './form';
import type { EvalCatalog } from './queries';

export type Update = (patch: Partial<EvalForm>) => void;
export type FieldErrors = Record<string, string | undefined>;

export function GenerationFields({ form, update }: { form: EvalForm; update: Update }) {
  const { t } = useTranslation();
  const generation = form.generation;
  const set = (key: GenerationKey, value: number | boolean) => update({ generation: { ...generation, [key]: value } });
  const number = (key: Exclude<GenerationKey, 'do_sample'>, props: { min?: number; max?: number; step?: number; decimalScale?: number; disabled?: boolean }) => (
    <NumberInput
      label={t(`evaluate.gen.${key}`)}
      value={generation[key]}
      onChange={(value) => typeof value === 'number' && set(key, value)}
      data-testid={`gen-${key}`}
      {...props}
    />
  );
  return (
    <Stack gap="xs">
      <Switch
        label={t('evaluate.gen.do_sample')}
        description={t('evaluate.gen.greedyHint')}
        checked={generation.do_sample}
        onChange={(event) => set('do_sample', event.currentTarget.checked)}
        data-testid="gen-do_sample"
      />
      <SimpleGrid cols={{ base: 2, sm: 3 }} spacing="xs">
        {number('max_new_tokens', { min: 1, max: 32768 })}
        {number('temperature', { min: 0, max: 2, step: 0.05, decimalScale: 2, disabled: !generation.do_sample })}
        {number('top_p', { min: 0.01, max: 1, step: 0.05, decimalScale: 2, disabled: !generation.do_sample })}
        {number('top_k', { min: 0, disabled: !generation.do_sample })}
        {number('num_beams', { min: 1, max: 16 })}
        {number('repetition_penalty', { min: 0.01, step: 0.05, decimalScale: 2 })}
      </SimpleGrid>
    </Stack>
  );
}

export interface JudgeRunOption {
  value: string;
  label: string;
}

export function JudgeFields({ form, update, catalog, errors, runs, modelIds }: { form: EvalForm; update: Update; catalog: EvalCatalog; errors: FieldErrors; runs: JudgeRunOption[]; modelIds: string[] }) {
  const { t } = useTranslation();
  const standalone = form.kind === 'judge';
  const pairwise = standalone && form.judge_mode === 'pairwise';
  const setRun = (index: number, value: string | null) => update({ judge_jobs: form.judge_jobs.map((run, i) => (i === index ? value : run)) });
  return (
    <Stack gap="xs" data-testid="judge-fields">
      {standalone && (
        <Stack gap={4}>
          <Text size="sm" fw={500}>
            {t('evaluate.judgeMode')}
          </Text>
          <SegmentedControl
            w="fit-content"
            data={catalog.judge_modes.map((mode) => ({ value: mode, label: t(`evaluate.judgeModes.${mode}`, { defaultValue: mode }) }))}
            value={form.judge_mode}
            onChange={(value) => update({ judge_mode: value as EvalForm['judge_mode'] })}
            data-testid="judge-mode"
          />
        </Stack>
      )}
      {standalone && (
        <SimpleGrid cols={{ base: 1, sm: pairwise ? 2 : 1 }} spacing="xs">
          {(pairwise ? [0, 1] : [0]).map((index) => (
            <Select
              key={index}
              label={pairwise ? t(index ? 'evaluate.runB' : 'evaluate.runA') : t('evaluate.judgeRun')}
              description={index === 0 ? t('evaluate.judgeRunHint') : undefined}
              data={runs}
              value={form.judge_jobs[index] ?? null}
              onChange={(value) => setRun(index, value)}
              error={index === 0 ? errors['judge_jobs'] : undefined}
              nothingFoundMessage={t('evaluate.noJudgeRuns')}
              searchable
              data-testid={`judge-run-${index}`}
            />
          ))}
        </SimpleGrid>
      )}
      <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="xs">
        <TextInput
          label={t('evaluate.judgeUrl')}
          description={t('evaluate.judgeUrlHint')}
          placeholder={`${typeof window !== 'undefined' ? window.location.origin : 'http://127.0.0.1:8000'}/v1`}
          value={form.judge_base_url}
          onChange={(event) => update({ judge_base_url: event.currentTarget.value })}
          error={errors['judge.base_url']}
          data-testid="judge-url"
        />
        <Autocomplete
          label={t('evaluate.judgeModel')}
          description={t('evaluate.judgeModelHint')}
          data={modelIds}
          value={form.judge_model}
          onChange={(value) => update({ judge_model: value })}
          error={errors['judge.model']}
          data-testid="judge-model"
        />
      </SimpleGrid>
      <TextInput
        label={t('evaluate.judgeKeyEnv')}
        description={t('evaluate.judgeKeyEnvHint')}
        placeholder="OPENAI_API_KEY"
        value={form.judge_api_key_env}
        onChange={(event) => update({ judge_api_key_env: event.currentTarget.value })}
        error={errors['judge.api_key_env']}
        data-testid="judge-key-env"
      />
      <Textarea
        label={t('evaluate.judgeRubric')}
        description={t('evaluate.judgeRubricHint')}
        value={form.judge_rubric}
        onChange={(event) => update({ judge_rubric: event.currentTarget.value })}
        autosize
        minRows={3}
        data-testid="judge-rubric"
      />
    </Stack>
  );
}

export function BenchmarkFields({ form, update, catalog, errors }: { form: EvalForm; update: Update; catalog: EvalCatalog; errors: FieldErrors }) {
  const { t } = useTranslation();
  const text = useEvalText(catalog.metrics);
  const benchmark = catalog.benchmarks.find((item) => item.task === form.benchmark);
  const pick = (task: string | null) => {
    const next = catalog.benchmarks.find((item) => item.task === task);
    update({
      benchmark: task,
      split: next && form.split && next.splits.includes(form.split) ? form.split : (next?.splits[0] ?? null),
      lang: next && next.languages.includes(form.lang) ? form.lang : (next?.languages[0] ?? form.lang),
    });
  };
  if (!catalog.benchmarks.length) return <Text c="dimmed">{t('evaluate.noBenchmarks')}</Text>;
  return (
    <Stack gap="xs">
      <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="xs">
        <Select
          label={t('evaluate.benchmark')}
          data={catalog.benchmarks.map((item) => ({ value: item.task, label: text.benchmark(item) }))}
          value={form.benchmark}
          onChange={pick}
          allowDeselect={false}
          error={errors['task']}
          data-testid="eval-benchmark"
        />
        <Select
          label={t('evaluate.split')}
          data={benchmark?.splits ?? []}
          value={form.split}
          onChange={(value) => update({ split: value })}
          allowDeselect={false}
          data-testid="eval-split"
        />
        <Stack gap={4}>
          <Text size="sm" fw={500}>
            {t('evaluate.lang')}
          </Text>
          <SegmentedControl
            w="fit-content"
            data={(benchmark?.languages ?? [form.lang]).map((lang) => ({ value: lang, label: t(`evaluate.langs.${lang}`, { defaultValue: lang }) }))}
            value={form.lang}
            onChange={(value) => update({ lang: value })}
            data-testid="eval-lang"
          />
        </Stack>
        <NumberInput label={t('evaluate.nShot')} description={t('evaluate.nShotHint')} min={0} max={25} value={form.n_shot} onChange={(value) => update({ n_shot: value })} data-testid="eval-n-shot" />
      </SimpleGrid>
      {benchmark && (
        <Group gap="xs">
          <Text size="xs" c="dimmed">
            {t('evaluate.subjects', { count: benchmark.subjects.length })}
          </Text>
          <Badge size="xs" variant="light" color={benchmark.bundled ? 'gray' : 'indigo'}>
            {benchmark.bundled ? t('evaluate.bundled') : t('evaluate.installed')}
          </Badge>
        </Group>
      )}
    </Stack>
  );
}
