// Form fields for an upload: files, stage, and (for a dataset_info.json or several files) the entry.
import { FileInput, Select, Stack, Textarea } from '@mantine/core';
import { useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { infoEntries } from './upload';

export const STAGE_OPTIONS = ['sft', 'pt', 'rm', 'dpo', 'kto', 'ppo'];

export interface UploadValues {
  files: File[];
  stage: string;
  entry: string;
  entryName: string | null;
}

export const EMPTY_UPLOAD: UploadValues = { files: [], stage: 'sft', entry: '', entryName: null };

export function UploadFields({ value, onChange }: { value: UploadValues; onChange: (value: UploadValues) => void }) {
  const { t } = useTranslation();
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
        description={t('datasets.stageHint')}
        data={STAGE_OPTIONS}
        value={value.stage}
        onChange={(stage) => onChange({ ...value, stage: stage ?? 'sft' })}
        allowDeselect={false}
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
