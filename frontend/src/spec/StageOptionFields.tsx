// The chosen stage's own spec keys (the catalog's `options`), each drawn from its JSON schema: a choice for
// an enum, a switch for a boolean, a number box, or a text box; reward_model and reward_funcs have their own.
import { Autocomplete, NumberInput, Select, SimpleGrid, Stack, Switch, Text, TextInput } from '@mantine/core';
import { Fragment } from 'react';
import { useTranslation } from 'react-i18next';
import { enumValues, type PropertySchema, SPEC_KEYS } from './schema';
import { RewardFuncsEditor } from './RewardFuncsEditor';
import { type OptionValues, optionValue, shownOptionKeys } from './stageOptions';

export interface RewardModelChoice {
  /** the reward model's folder (a finished rm run's output) */
  path: string;
  /** the run it comes from */
  name: string;
}

interface Props {
  stageKeys: readonly string[];
  values: OptionValues;
  onChange: (key: string, value: unknown) => void;
  error: (key: string) => string | undefined;
  rewardModels: RewardModelChoice[];
}

/** The non-null member of a nullable schema, and whether null is allowed. */
function plain(schema: PropertySchema | undefined): { schema: PropertySchema; nullable: boolean } {
  const members = schema?.anyOf ?? (schema ? [schema] : []);
  const nonNull = members.filter((member) => member.type !== 'null');
  return { schema: nonNull[0] ?? {}, nullable: nonNull.length < members.length };
}

function numberOf(value: number | string, nullable: boolean): number | null {
  if (typeof value === 'number') return value;
  if (value.trim() === '') return nullable ? null : Number.NaN;
  const parsed = Number(value);
  return Number.isFinite(parsed) ? parsed : Number.NaN;
}

export function StageOptionFields({ stageKeys, values, onChange, error, rewardModels }: Props) {
  const { t } = useTranslation();
  const shown = shownOptionKeys(stageKeys, values);
  const label = (key: string) => t(`option.${key}`, { defaultValue: key });
  const field = (key: string) => {
    const value = optionValue(key, stageKeys, values);
    const { schema, nullable } = plain(SPEC_KEYS[key]?.schema);
    const common = { label: label(key), error: error(key), 'data-testid': `field-${key}` };
    if (key === 'reward_model') {
      return (
        <Autocomplete
          {...common}
          description={t('option.rewardModelHint')}
          placeholder={t('option.rewardModelPlaceholder')}
          data={rewardModels.map((model) => model.path)}
          renderOption={({ option }) => (
            <Stack gap={0}>
              <Text size="sm">{rewardModels.find((model) => model.path === option.value)?.name}</Text>
              <Text size="xs" c="dimmed">
                {option.value}
              </Text>
            </Stack>
          )}
          value={typeof value === 'string' ? value : ''}
          onChange={(text) => onChange(key, text.trim() ? text : null)}
        />
      );
    }
    if (schema.enum) {
      return <Select {...common} data={enumValues(key)} value={value === null || value === undefined ? null : String(value)} onChange={(choice) => onChange(key, choice)} allowDeselect={nullable} clearable={nullable} />;
    }
    if (schema.type === 'boolean') {
      return <Switch {...common} mt="lg" checked={value === true} onChange={(e) => onChange(key, e.currentTarget.checked)} />;
    }
    if (schema.type === 'integer' || schema.type === 'number') {
      const integer = schema.type === 'integer';
      return (
        <NumberInput
          {...common}
          value={typeof value === 'number' && !Number.isNaN(value) ? value : ''}
          onChange={(input) => onChange(key, numberOf(input, nullable))}
          min={schema.minimum ?? schema.exclusiveMinimum}
          max={schema.maximum ?? schema.exclusiveMaximum}
          step={integer ? 1 : 0.05}
          allowDecimal={!integer}
          placeholder={nullable ? t('option.unset') : undefined}
        />
      );
    }
    return (
      <TextInput
        {...common}
        value={value === null || value === undefined ? '' : String(value)}
        placeholder={nullable ? t('option.unset') : undefined}
        onChange={(e) => onChange(key, e.currentTarget.value === '' && nullable ? null : e.currentTarget.value)}
      />
    );
  };
  const simple = shown.filter((key) => key !== 'reward_funcs');
  return (
    <Stack data-testid="stage-options">
      {shown.includes('reward_funcs') && (
        <RewardFuncsEditor value={optionValue('reward_funcs', stageKeys, values)} onChange={(rows) => onChange('reward_funcs', rows)} error={error('reward_funcs')} />
      )}
      <SimpleGrid cols={{ base: 1, sm: 2, md: 3 }}>
        {simple.map((key) => (
          <Fragment key={key}>{field(key)}</Fragment>
        ))}
      </SimpleGrid>
    </Stack>
  );
}
