// Chat with a served model (OpenAI-compatible /v1), optionally side by side with another (e.g. the base model).
// A server without the /v1 endpoints (an API process started without serving) gets a notice and nothing is sent.
import { Alert, Box, Button, Grid, Group, NumberInput, Paper, ScrollArea, Select, Slider, Stack, Text, Textarea } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { IconInfoCircle } from '@tabler/icons-react';
import { useRef, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { useSearchParams } from 'react-router';
import { errorText } from '../api/errors';
import { type ChatMessage, fetchServedModels, streamChat } from '../api/extras';
import { ErrorAlert, Page } from '../components/Page';

interface Pane {
  model: string;
  messages: ChatMessage[];
  error: string | null;
}

function Transcript({ pane, busy }: { pane: Pane; busy: boolean }) {
  const { t } = useTranslation();
  return (
    <Paper withBorder radius="md" p="sm" h="100%">
      <Text fw={600} size="sm" mb="xs" style={{ overflowWrap: 'anywhere' }}>
        {pane.model}
      </Text>
      <ScrollArea h={380}>
        <Stack gap="xs" data-testid="chat-transcript">
          {pane.messages.length === 0 && <Text c="dimmed" size="sm">{t('chat.emptyTranscript')}</Text>}
          {pane.messages.map((message, index) => (
            <Box
              key={index}
              data-role={message.role}
              p="xs"
              style={{
                borderRadius: 8,
                alignSelf: message.role === 'user' ? 'flex-end' : 'flex-start',
                maxWidth: '90%',
                background: message.role === 'user' ? 'var(--mantine-color-indigo-0)' : 'var(--mantine-color-gray-0)',
                whiteSpace: 'pre-wrap',
              }}
            >
              {message.content || message.role !== 'assistant' ? (
                <Text size="sm">{message.content}</Text>
              ) : busy && index === pane.messages.length - 1 ? (
                <Text size="sm">…</Text>
              ) : pane.error && index === pane.messages.length - 1 ? null : (
                // a finished answer without text: the model emitted its end token first
                <Text size="sm" c="dimmed" fs="italic" data-testid="chat-empty-answer">
                  {t('chat.emptyAnswer')}
                </Text>
              )}
            </Box>
          ))}
          {pane.error && <Alert color="red">{pane.error}</Alert>}
        </Stack>
      </ScrollArea>
    </Paper>
  );
}

export function Chat() {
  const { t } = useTranslation();
  const served = useQuery({ queryKey: ['v1-models'], queryFn: fetchServedModels, retry: false });
  const available = served.data?.available === true;
  const [params] = useSearchParams();
  const [model, setModel] = useState<string | null>(params.get('model'));
  // a model named in the link (?model=, e.g. a fresh export's) is offered even before the list has it
  const listed = served.data?.available ? served.data.data.map((m) => m.id) : [];
  const models = model && served.data?.available && !listed.includes(model) ? [model, ...listed] : listed;
  const [other, setOther] = useState<string | null>(null);
  const [system, setSystem] = useState('');
  const [temperature, setTemperature] = useState(0.7);
  const [topP, setTopP] = useState(0.9);
  const [maxTokens, setMaxTokens] = useState<number | string>(512);
  const [input, setInput] = useState('');
  const [panes, setPanes] = useState<Pane[]>([]);
  const [busy, setBusy] = useState(false);
  const abort = useRef<AbortController | null>(null);
  const chosen = [model, other].filter((m): m is string => Boolean(m));
  const current = chosen.map((name) => panes.find((p) => p.model === name) ?? { model: name, messages: [], error: null });

  const send = async () => {
    const text = input.trim();
    if (!text || !chosen.length) return;
    setInput('');
    setBusy(true);
    const controller = new AbortController();
    abort.current = controller;
    const next = current.map((pane) => ({ ...pane, error: null, messages: [...pane.messages, { role: 'user' as const, content: text }, { role: 'assistant' as const, content: '' }] }));
    setPanes(next);
    const appendTo = (name: string, delta: string) =>
      setPanes((old) =>
        old.map((pane) => {
          if (pane.model !== name) return pane;
          const messages = [...pane.messages];
          const last = messages[messages.length - 1];
          messages[messages.length - 1] = { ...last, content: last.content + delta };
          return { ...pane, messages };
        }),
      );
    await Promise.all(
      next.map(async (pane) => {
        const history = pane.messages.slice(0, -1);
        const messages: ChatMessage[] = system.trim() ? [{ role: 'system', content: system.trim() }, ...history] : history;
        try {
          await streamChat({
            model: pane.model,
            messages,
            temperature,
            top_p: topP,
            max_tokens: Number(maxTokens) || 512,
            signal: controller.signal,
            onDelta: (delta) => appendTo(pane.model, delta),
          });
        } catch (error) {
          if (controller.signal.aborted) return;
          setPanes((old) => old.map((p) => (p.model === pane.model ? { ...p, error: errorText(error) } : p)));
        }
      }),
    );
    setBusy(false);
  };

  return (
    <Page title={t('nav.chat')}>
      <ErrorAlert error={served.error} />
      {served.data && !available && (
        <Alert color="blue" icon={<IconInfoCircle size={18} />} title={t('chat.unavailableTitle')} data-testid="chat-unavailable">
          {t('chat.unavailable')}
        </Alert>
      )}
      <Grid>
        <Grid.Col span={{ base: 12, md: 4 }}>
          <Paper withBorder radius="md" p="sm">
            <Stack gap="sm">
              <Select label={t('chat.model')} data={models} value={model} onChange={setModel} disabled={!available} searchable data-testid="chat-model" />
              <Select label={t('chat.sideBySide')} placeholder={t('chat.sideBySideHint')} data={models.filter((m) => m !== model)} value={other} onChange={setOther} disabled={!available} clearable data-testid="chat-compare" />
              <Textarea label={t('chat.system')} value={system} onChange={(e) => setSystem(e.currentTarget.value)} autosize minRows={2} disabled={!available} />
              <Stack gap={2}>
                <Text size="sm">{t('chat.temperature', { value: temperature.toFixed(2) })}</Text>
                <Slider min={0} max={2} step={0.05} value={temperature} onChange={setTemperature} disabled={!available} thumbLabel={t('chat.temperatureLabel')} data-testid="chat-temperature" />
              </Stack>
              <Stack gap={2}>
                <Text size="sm">{t('chat.topP', { value: topP.toFixed(2) })}</Text>
                <Slider min={0.05} max={1} step={0.05} value={topP} onChange={setTopP} disabled={!available} />
              </Stack>
              <NumberInput label={t('chat.maxTokens')} value={maxTokens} onChange={setMaxTokens} min={1} max={32768} disabled={!available} data-testid="chat-max-tokens" />
              <Button variant="default" onClick={() => setPanes([])} disabled={!available || busy}>
                {t('chat.clear')}
              </Button>
            </Stack>
          </Paper>
        </Grid.Col>
        <Grid.Col span={{ base: 12, md: 8 }}>
          <Stack>
            <Grid>
              {(current.length ? current : [{ model: t('chat.noModel'), messages: [], error: null }]).map((pane) => (
                <Grid.Col key={pane.model} span={{ base: 12, lg: current.length > 1 ? 6 : 12 }}>
                  <Transcript pane={pane} busy={busy} />
                </Grid.Col>
              ))}
            </Grid>
            <Group align="flex-end" wrap="nowrap">
              <Textarea
                flex={1}
                placeholder={t('chat.placeholder')}
                value={input}
                onChange={(e) => setInput(e.currentTarget.value)}
                onKeyDown={(e) => {
                  if (e.key === 'Enter' && !e.shiftKey) {
                    e.preventDefault();
                    void send();
                  }
                }}
                autosize
                minRows={1}
                maxRows={6}
                disabled={!available}
                data-testid="chat-input"
              />
              {busy ? (
                <Button color="red" variant="light" onClick={() => abort.current?.abort()}>
                  {t('chat.stop')}
                </Button>
              ) : (
                <Button onClick={() => void send()} disabled={!available || !chosen.length || !input.trim()} data-testid="chat-send">
                  {t('chat.send')}
                </Button>
              )}
            </Group>
          </Stack>
        </Grid.Col>
      </Grid>
    </Page>
  );
}
