// Form fields for an upload: files, stage, and (for a dataset_info.json or several files) the entry.
import { FileInput, Select, Stack, Textarea } from '@mantine/core';
import { useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { useStageText } from '../i18n/stageText';
import { stageInfo, useStages } from '../stages/catalog';
import { infoEntries } from './upload';

export interface UploadValues {
  files: File[];
  /** the stage the rows are checked for; '' lets the server choose from the entry (ranking, kto_tag) */
  stage: string;
  entry: string;
  entryName: string | null;
}

export const EMPTY_UPLOAD: UploadValues = { files: [], stage: '', entry: '', entryName: null };

export function UploadFields({ value, onChange }: { value: UploadValues; onChange: (value: UploadValues) => void }) {
  const { t } = useTranslation();
  const stages = useStages();
  const text = useStageText();
  const chosen = stageInfo(stages.data ?? [], value.stage);
  const [entries, setEntries] = useState<string[]>([]);
  useEffect(() => {
    let live = true;
    void infoEntries(value.files).then((names) => live && setEntries(names));
    return () => {
      live = false;
    };
  }, [value.files]);
  return (
    <Stack>
      <FileInput
        label={t('datasets.files')}
        description={t('datasets.filesHint')}
        multiple
        required
        value={value.files}
        onChange={(files) => onChange({ ...value, files })}
        clearable
        data-testid="dataset-files"
      />
      {entries.length > 0 && (
        <Select
          label={t('datasets.entryName')}
          description={t('datasets.entryNameHint')}
          data={entries}
          value={value.entryName}
          onChange={(entryName) => onChange({ ...value, entryName })}
          clearable
          data-testid="dataset-entry-name"
        />
      )}
      <Select
        label={t('datasets.stage')}
        description={chosen ? text(chosen).data_help : t('datasets.stageHint')}
        data={[
          { value: '', label: t('datasets.stageAuto') },
          ...(stages.data ?? []).map((stage) => ({ value: stage.name, label: `${text(stage).title} (${stage.name})` })),
        ]}
        value={value.stage}
        onChange={(stage) => onChange({ ...value, stage: stage ?? '' })}
        allowDeselect={false}
        data-testid="dataset-stage"
      />
      <Textarea
        label={t('datasets.entry')}
        description={t('datasets.entryHint')}
        placeholder='{"file_name": "data.json", "formatting": "sharegpt", "columns": {"messages": "conversations"}}'
        autosize
        minRows={2}
        value={value.entry}
        onChange={(e) => onChange({ ...value, entry: e.currentTarget.value })}
        styles={{ input: { fontFamily: 'monospace', fontSize: 12 } }}
      />
    </Stack>
  );
}
