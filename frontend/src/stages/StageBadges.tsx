// Which stages a dataset can feed, as small badges (the stage's title on hover).
import { Badge, Group, Text, Tooltip } from '@mantine/core';
import { useStageText } from '../i18n/stageText';
import { datasetStages, stageInfo, useStages } from './catalog';

export function StageBadges({ dataset, testId = 'dataset-stages' }: { dataset: object; testId?: string }) {
  const stages = useStages();
  const text = useStageText();
  const names = datasetStages(dataset, stages.data ?? []);
  if (!names?.length) return <Text size="sm">–</Text>;
  return (
    <Group gap={4} data-testid={testId} data-stages={names.join(',')}>
      {names.map((name) => {
        const info = stageInfo(stages.data ?? [], name);
        return (
          <Tooltip key={name} label={info ? text(info).title : name} withinPortal>
            <Badge size="sm" variant="light" radius="sm">
              {name}
            </Badge>
          </Tooltip>
        );
      })}
    </Group>
  );
}
