// An export's files: kind, size and verification figures, and what can be done with each: download (or copy a
// resumable curl command for large files), read the Modelfile / model card inline, chat with a served one,
// deploy it (keep its engine warm), delete it with its files.
import { ActionIcon, Badge, Button, Code, CopyButton, Group, Modal, ScrollArea, Stack, Table, Text, Tooltip } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { IconCopy, IconDownload, IconEye, IconMessages, IconRocket, IconTrash } from '@tabler/icons-react';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { useNavigate } from 'react-router';
import { ErrorAlert, formatBytes } from '../components/Page';
import { downloadArtifact } from '../utils/download';
import { checkFigures, TONE_COLORS } from './checks';
import { artifactPath, deleteArtifact, deploy, type ExportArtifact, undeploy, useArtifactText, useDeployments } from './queries';

/** Formats whose artifact is a folder (downloaded as a zip). */
const FOLDERS = ['hf', 'onnx', 'gptq'];
/** Artifacts shown as text inline. */
const TEXTS = ['modelfile', 'card'];
/** Display order: the models, then the files that describe them. */
const ORDER = ['hf', 'gguf', 'onnx', 'gptq', 'modelfile', 'card'];
/** Badges keep their whole text (a table cell would cut it short). */
const WHOLE = { root: { overflow: 'visible', flexShrink: 0 }, label: { overflow: 'visible', textOverflow: 'clip', textTransform: 'none' } } as const;

/** Models first (merged, GGUF by size, ...), then the Modelfile and the card. */
export function sortArtifacts<T extends Pick<ExportArtifact, 'format' | 'size_bytes' | 'name'>>(artifacts: readonly T[]): T[] {
  const rank = (format: string | null | undefined) => (ORDER.includes(format ?? '') ? ORDER.indexOf(format ?? '') : ORDER.length);
  return [...artifacts].sort((a, b) => rank(a.format) - rank(b.format) || b.size_bytes - a.size_bytes || a.name.localeCompare(b.name));
}

/** The file name a download is saved under when the server names none. */
export function downloadName(artifact: Pick<ExportArtifact, 'name' | 'format'>): string {
  if (FOLDERS.includes(artifact.format ?? '')) return `${artifact.name}.zip`;
  if (artifact.format === 'gguf' && !artifact.name.endsWith('.gguf')) return `${artifact.name}.gguf`;
  return artifact.name;
}

/** A resumable download of a large artifact from a shell (the token is the reader's own API key). */
export function curlCommand(jobId: string, artifact: Pick<ExportArtifact, 'name' | 'format'>, origin: string): string {
  return `curl -fL -C - -H "Authorization: Bearer $TUNERY_API_KEY" -o '${downloadName(artifact)}' '${origin}${artifactPath(jobId, artifact.name)}'`;
}

export function Checks({ checks }: { checks: Record<string, unknown> | null | undefined }) {
  const { t } = useTranslation();
  const figures = checkFigures(checks);
  if (!figures.length) return <Text size="xs" c="dimmed">–</Text>;
  return (
    <Group gap={4} wrap="wrap">
      {figures.map((figure) => (
        <Tooltip key={figure.key} label={t(`exports.checkHints.${figure.key}`, { defaultValue: figure.key })} multiline w={260}>
          <Badge size="sm" variant="light" color={TONE_COLORS[figure.tone]} data-testid="artifact-check" data-check={figure.key} styles={WHOLE}>
            {`${t(`exports.checkNames.${figure.key}`, { defaultValue: figure.key })} ${figure.text}`}
          </Badge>
        </Tooltip>
      ))}
    </Group>
  );
}

export function KindBadge({ format, quantization }: { format: string | null | undefined; quantization: string | null | undefined }) {
  const { t } = useTranslation();
  return (
    <Badge size="sm" variant="outline" styles={WHOLE}>
      {t(`exports.kinds.${format ?? ''}`, { defaultValue: format ?? '–' })}
      {quantization ? ` · ${quantization}` : ''}
    </Badge>
  );
}

function TextView({ jobId, artifact, onClose }: { jobId: string; artifact: ExportArtifact | null; onClose: () => void }) {
  const { t } = useTranslation();
  const text = useArtifactText(jobId, artifact?.name ?? null);
  return (
    <Modal opened={artifact !== null} onClose={onClose} title={artifact?.name} size="xl">
      <Stack>
        <ErrorAlert error={text.error} />
        {text.data === undefined && !text.error ? (
          <Text c="dimmed">{t('common.loading')}</Text>
        ) : (
          <ScrollArea.Autosize mah="65vh">
            <Code block data-testid="artifact-text" style={{ whiteSpace: 'pre-wrap' }}>
              {text.data}
            </Code>
          </ScrollArea.Autosize>
        )}
        <Group justify="flex-end">
          <CopyButton value={text.data ?? ''}>{({ copied, copy }) => <Button variant="default" onClick={copy}>{copied ? t('common.copied') : t('common.copy')}</Button>}</CopyButton>
          <Button variant="default" onClick={onClose}>
            {t('common.done')}
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}

function DeployButton({ model }: { model: string }) {
  const { t } = useTranslation();
  const queryClient = useQueryClient();
  const deployments = useDeployments();
  const current = deployments.data?.find((item) => item.model === model);
  const act = useMutation({
    mutationFn: () => (current ? undeploy(current.id) : deploy(model)),
    onSettled: () => queryClient.invalidateQueries({ queryKey: ['deployments'] }),
  });
  return (
    <Tooltip label={act.error ? String((act.error as Error).message) : current ? t('exports.deployedHint') : t('exports.deployHint')} multiline w={280} color={act.error ? 'red' : undefined}>
      <Button size="xs" variant={current ? 'light' : 'default'} color={act.error ? 'red' : current ? 'green' : undefined} leftSection={<IconRocket size={14} />} loading={act.isPending} onClick={() => act.mutate()} data-testid="artifact-deploy" data-deployed={current ? 'true' : 'false'}>
        {current ? t('exports.undeploy') : t('exports.deploy')}
      </Button>
    </Tooltip>
  );
}

export function ArtifactTable({ jobId, artifacts }: { jobId: string; artifacts: readonly ExportArtifact[] }) {
  const { t } = useTranslation();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [viewing, setViewing] = useState<ExportArtifact | null>(null);
  const [deleting, setDeleting] = useState<ExportArtifact | null>(null);
  const [error, setError] = useState<unknown>(null);
  const remove = useMutation({
    mutationFn: (name: string) => deleteArtifact(jobId, name),
    onSuccess: () => {
      setDeleting(null);
      void queryClient.invalidateQueries({ queryKey: ['exports'] });
      void queryClient.invalidateQueries({ queryKey: ['artifacts', jobId] });
      void queryClient.invalidateQueries({ queryKey: ['v1-models'] });
    },
  });
  const origin = typeof window !== 'undefined' ? window.location.origin : '';
  const chat = (model: string) => {
    void queryClient.invalidateQueries({ queryKey: ['v1-models'] });
    navigate(`/chat?model=${encodeURIComponent(model)}`);
  };
  return (
    <>
      <ErrorAlert error={error} />
      <Table.ScrollContainer minWidth={860}>
        <Table verticalSpacing="xs" data-testid="export-artifacts">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>{t('exports.file')}</Table.Th>
              <Table.Th>{t('exports.kind')}</Table.Th>
              <Table.Th ta="right">{t('exports.size')}</Table.Th>
              <Table.Th>{t('exports.checks')}</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {sortArtifacts(artifacts).map((artifact) => (
              <Table.Tr key={artifact.id} data-testid="artifact-row" data-name={artifact.name} data-format={artifact.format ?? ''} data-size={artifact.size_bytes}>
                <Table.Td>
                  <Text size="sm" fw={600} style={{ overflowWrap: 'anywhere' }}>
                    {artifact.name}
                  </Text>
                  {artifact.serve_model_id && (
                    <Text size="xs" c="dimmed" style={{ overflowWrap: 'anywhere' }} data-testid="artifact-served-id">
                      {artifact.serve_model_id}
                    </Text>
                  )}
                </Table.Td>
                <Table.Td>
                  <KindBadge format={artifact.format} quantization={artifact.quantization} />
                </Table.Td>
                <Table.Td ta="right" style={{ whiteSpace: 'nowrap' }} data-testid="artifact-size">
                  {formatBytes(artifact.size_bytes)}
                </Table.Td>
                <Table.Td miw={150}>
                  <Checks checks={artifact.checks} />
                </Table.Td>
                <Table.Td>
                  <Group gap={6} justify="flex-end" wrap="nowrap">
                    {artifact.serve_model_id && (
                      <>
                        <Button size="xs" leftSection={<IconMessages size={14} />} onClick={() => chat(artifact.serve_model_id as string)} data-testid="artifact-chat">
                          {t('exports.chat')}
                        </Button>
                        <DeployButton model={artifact.serve_model_id} />
                      </>
                    )}
                    {TEXTS.includes(artifact.format ?? '') && (
                      <Tooltip label={t('exports.view')}>
                        <ActionIcon variant="default" aria-label={t('exports.view')} onClick={() => setViewing(artifact)} data-testid="artifact-view">
                          <IconEye size={16} />
                        </ActionIcon>
                      </Tooltip>
                    )}
                    <Tooltip label={t('exports.download')}>
                      <ActionIcon
                        variant="default"
                        aria-label={t('exports.download')}
                        onClick={() => {
                          setError(null);
                          downloadArtifact(jobId, artifact.name).catch(setError);
                        }}
                        data-testid="artifact-download"
                      >
                        <IconDownload size={16} />
                      </ActionIcon>
                    </Tooltip>
                    <CopyButton value={curlCommand(jobId, artifact, origin)}>
                      {({ copied, copy }) => (
                        <Tooltip label={copied ? t('common.copied') : t('exports.copyCurl')} multiline w={240}>
                          <ActionIcon variant="default" aria-label={t('exports.copyCurl')} onClick={copy} data-testid="artifact-curl">
                            <IconCopy size={16} />
                          </ActionIcon>
                        </Tooltip>
                      )}
                    </CopyButton>
                    <Tooltip label={t('exports.delete')}>
                      <ActionIcon variant="subtle" color="red" aria-label={t('exports.delete')} onClick={() => setDeleting(artifact)} data-testid="artifact-delete">
                        <IconTrash size={16} />
                      </ActionIcon>
                    </Tooltip>
                  </Group>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      <TextView jobId={jobId} artifact={viewing} onClose={() => setViewing(null)} />
      <Modal
        opened={deleting !== null}
        onClose={() => {
          setDeleting(null);
          remove.reset();
        }}
        title={t('exports.deleteTitle')}
      >
        <Stack>
          <Text>{t('exports.deleteConfirm', { name: deleting?.name ?? '', size: formatBytes(deleting?.size_bytes) })}</Text>
          {deleting?.serve_model_id && <Text size="sm" c="dimmed">{t('exports.deleteServed')}</Text>}
          <ErrorAlert error={remove.error} />
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setDeleting(null)}>
              {t('common.cancel')}
            </Button>
            <Button color="red" loading={remove.isPending} onClick={() => deleting && remove.mutate(deleting.name)} data-testid="artifact-delete-confirm">
              {t('exports.delete')}
            </Button>
          </Group>
        </Stack>
      </Modal>
    </>
  );
}
