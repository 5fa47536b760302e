// The GRPO reward functions (spec key reward_funcs): a list of {name, weight, args}. The name is a built-in
// or a user function 'package.module:function'; args are the function's keyword arguments, as JSON.
import { ActionIcon, Autocomplete, Button, Group, NumberInput, Stack, Text, TextInput } from '@mantine/core';
import { IconPlus, IconTrash } from '@tabler/icons-react';
import { useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import catalog from '../api/catalog.gen.json';
import { type RewardFunc, rewardFuncList } from './stageOptions';

interface RewardInfo {
  name: string;
  summary?: string;
  args?: string[];
}

/** The built-in reward functions (tunery.spec.rewards, exported into the catalog). Suggestions only: any
 * 'package.module:function' is accepted too. */
export const BUILTIN_REWARDS: RewardInfo[] = catalog.reward_functions;

function parseArgs(text: string): Record<string, unknown> | string {
  if (!text.trim()) return {};
  try {
    const parsed = JSON.parse(text) as unknown;
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : text;
  } catch {
    return text;
  }
}

/** A JSON box that keeps what the user types; the value is the object once the text is one, else the text. */
function ArgsInput({ value, onChange, testId }: { value: RewardFunc['args']; onChange: (value: RewardFunc['args']) => void; testId: string }) {
  const { t } = useTranslation();
  const shown = (args: RewardFunc['args']) => (typeof args === 'string' ? args : args && Object.keys(args).length ? JSON.stringify(args) : '');
  const [text, setText] = useState(shown(value));
  useEffect(() => {
    // follow outside changes (import, preset) but keep what the user is typing
    setText((old) => (JSON.stringify(parseArgs(old)) === JSON.stringify(value ?? {}) ? old : shown(value)));
  }, [value]);
  const invalid = typeof parseArgs(text) === 'string';
  return (
    <TextInput
      flex={2}
      miw={160}
      size="xs"
      label={t('option.rewardArgs')}
      placeholder='{"pattern": "^\\\\d+$"}'
      value={text}
      error={invalid ? t('option.rewardArgsInvalid') : undefined}
      styles={{ input: { fontFamily: 'monospace' } }}
      data-testid={testId}
      onChange={(e) => {
        setText(e.currentTarget.value);
        onChange(parseArgs(e.currentTarget.value));
      }}
    />
  );
}

export function RewardFuncsEditor({ value, onChange, error }: { value: unknown; onChange: (value: RewardFunc[]) => void; error?: string }) {
  const { t } = useTranslation();
  const rows = rewardFuncList(value);
  const change = (index: number, patch: Partial<RewardFunc>) => {
    const next = rows.map((row, i) => (i === index ? { ...row, ...patch } : row));
    // empty args are the default: leave them out of the spec
    onChange(next.map(({ args, ...rest }) => (args === undefined || (typeof args === 'object' && !Object.keys(args).length) ? rest : { ...rest, args })));
  };
  return (
    <Stack gap="xs" data-testid="field-reward_funcs">
      <div>
        <Text size="sm" fw={500}>
          {t('option.reward_funcs')}
        </Text>
        <Text size="xs" c="dimmed">
          {t('option.rewardFuncsHint', { builtins: BUILTIN_REWARDS.map((reward) => reward.name).join(', ') })}
        </Text>
      </div>
      {rows.map((row, index) => (
        <Group key={index} align="flex-start" gap="xs" wrap="wrap" data-testid="reward-func">
          <Autocomplete
            flex={2}
            miw={160}
            size="xs"
            label={t('option.rewardName')}
            data={BUILTIN_REWARDS.map((reward) => reward.name)}
            renderOption={({ option }) => {
              const info = BUILTIN_REWARDS.find((reward) => reward.name === option.value);
              return (
                <Stack gap={0}>
                  <Text size="sm">{option.value}</Text>
                  {info?.summary && (
                    <Text size="xs" c="dimmed">
                      {info.summary}
                      {info.args?.length ? ` (args: ${info.args.join(', ')})` : ''}
                    </Text>
                  )}
                </Stack>
              );
            }}
            value={row.name}
            onChange={(name) => change(index, { name })}
            error={row.name.trim() ? undefined : t('option.rewardNameMissing')}
            data-testid={`reward-func-name-${index}`}
          />
          <NumberInput
            w={90}
            size="xs"
            label={t('option.rewardWeight')}
            value={row.weight ?? 1}
            step={0.1}
            onChange={(weight) => change(index, { weight: typeof weight === 'number' ? weight : Number(weight) })}
            data-testid={`reward-func-weight-${index}`}
          />
          <ArgsInput value={row.args} onChange={(args) => change(index, { args })} testId={`reward-func-args-${index}`} />
          <ActionIcon
            mt={22}
            variant="subtle"
            color="red"
            aria-label={t('option.rewardRemove', { name: row.name })}
            onClick={() => onChange(rows.filter((_, i) => i !== index))}
          >
            <IconTrash size={16} />
          </ActionIcon>
        </Group>
      ))}
      {error && (
        <Text c="red" size="xs">
          {error}
        </Text>
      )}
      <Button
        size="compact-sm"
        variant="light"
        w="fit-content"
        leftSection={<IconPlus size={14} />}
        onClick={() => onChange([...rows, { name: rows.length ? '' : 'exact_match', weight: 1 }])}
        data-testid="reward-func-add"
      >
        {t('option.rewardAdd')}
      </Button>
    </Stack>
  );
}
