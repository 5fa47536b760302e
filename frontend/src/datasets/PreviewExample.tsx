// One previewed row. SFT / pt rows are runs of trained and masked text; the preference and RL stages add
// their own parts (tunery.engine.tokenize.preview): a pair shows its masked prompt and both trained answers
// (chosen, rejected), a KTO row its answer and label, a prompt row its prompt and the reference answer.
import { Badge, Box, Group, Paper, SimpleGrid, Stack, Text } from '@mantine/core';
import { useTranslation } from 'react-i18next';
import type { Schemas } from '../api/client';

export const SPAN_STYLES = {
  trained: { background: 'var(--mantine-color-green-1)', color: 'var(--mantine-color-green-9)' },
  masked: { background: 'var(--mantine-color-gray-1)', color: 'var(--mantine-color-gray-6)' },
};

interface Part {
  tokens: number;
  text: string;
}

/** A previewed row with the parts the preference and RL stages add (all optional: SFT rows have none). */
export type PreviewRow = Schemas['PreviewExample'] & {
  prompt?: Part;
  chosen?: Part;
  rejected?: Part;
  completion?: Part;
  label?: boolean;
  reference?: string | null;
};

const BLOCK = { whiteSpace: 'pre-wrap', wordBreak: 'break-word', fontSize: 12, lineHeight: 1.5, maxHeight: 320, overflow: 'auto' } as const;

export function Spans({ spans }: { spans: Schemas['PreviewSpan'][] }) {
  return (
    <Box component="pre" m={0} p="xs" style={BLOCK} data-testid="preview-spans">
      {spans.map((span, index) => (
        <span key={index} data-trained={span.trained ? 'true' : 'false'} style={{ ...(span.trained ? SPAN_STYLES.trained : SPAN_STYLES.masked), borderRadius: 3 }}>
          {span.text}
        </span>
      ))}
    </Box>
  );
}

/** One part of a row (prompt, an answer, the reference), headed by its name and token count. */
function Block({ title, part, trained, testId }: { title: string; part: Part; trained: boolean; testId: string }) {
  const { t } = useTranslation();
  return (
    <Stack gap={2} data-testid={testId}>
      <Text size="xs" fw={600}>
        {title} <Text span size="xs" c="dimmed">· {t('preview.partTokens', { count: part.tokens })}</Text>
      </Text>
      <Box component="pre" m={0} p="xs" style={BLOCK}>
        <span data-trained={trained ? 'true' : 'false'} style={{ ...(trained ? SPAN_STYLES.trained : SPAN_STYLES.masked), borderRadius: 3 }}>
          {part.text}
        </span>
      </Box>
    </Stack>
  );
}

function Parts({ example }: { example: PreviewRow }) {
  const { t } = useTranslation();
  if (!example.prompt) return <Spans spans={example.spans} />;
  const prompt = <Block title={t('preview.prompt')} part={example.prompt} trained={false} testId="preview-prompt" />;
  if (example.chosen && example.rejected) {
    return (
      <Stack gap="xs">
        {prompt}
        <SimpleGrid cols={{ base: 1, sm: 2 }}>
          <Block title={t('preview.chosen')} part={example.chosen} trained testId="preview-chosen" />
          <Block title={t('preview.rejected')} part={example.rejected} trained testId="preview-rejected" />
        </SimpleGrid>
      </Stack>
    );
  }
  if (example.completion) {
    return (
      <Stack gap="xs">
        {prompt}
        <Block title={t('preview.completion')} part={example.completion} trained testId="preview-completion" />
      </Stack>
    );
  }
  return (
    <Stack gap="xs">
      {prompt}
      <Stack gap={2} data-testid="preview-reference">
        <Text size="xs" fw={600}>
          {t('preview.reference')}
        </Text>
        {example.reference === null || example.reference === undefined ? (
          <Text size="xs" c="dimmed">
            {t('preview.noReference')}
          </Text>
        ) : (
          <Box component="pre" m={0} p="xs" style={{ ...BLOCK, border: '1px dashed var(--mantine-color-default-border)', borderRadius: 4 }}>
            {example.reference}
          </Box>
        )}
      </Stack>
    </Stack>
  );
}

export function PreviewExample({ example }: { example: PreviewRow }) {
  const { t } = useTranslation();
  return (
    <Paper withBorder radius="md" p="xs" data-testid="preview-example">
      <Group gap="xs" mb={4}>
        <Text size="xs" c="dimmed">
          {example.file ?? '?'} · {t('preview.row', { row: example.row ?? '?' })}
        </Text>
        <Badge size="xs" variant="outline">
          {t('preview.tokenCount', { tokens: example.tokens, trained: example.trained_tokens })}
        </Badge>
        {typeof example.label === 'boolean' && (
          <Badge size="xs" variant="light" color={example.label ? 'green' : 'red'} data-testid="preview-label" data-label={String(example.label)}>
            {example.label ? t('preview.desirable') : t('preview.undesirable')}
          </Badge>
        )}
        {example.truncated_from !== null && (
          <Badge size="xs" color="red" variant="light">
            {t('preview.truncatedFrom', { from: example.truncated_from })}
          </Badge>
        )}
      </Group>
      <Parts example={example} />
    </Paper>
  );
}
