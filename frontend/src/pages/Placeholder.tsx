// Screens whose features arrive with their own issues: they say so and do nothing else.
import { Alert, List, Text } from '@mantine/core';
import { IconClock } from '@tabler/icons-react';
import { useTranslation } from 'react-i18next';
import { Page } from '../components/Page';

export function Coming({ screen }: { screen: 'export' }) {
  const { t } = useTranslation();
  const items = t(`coming.${screen}Items`, { returnObjects: true }) as string[];
  return (
    <Page title={t(`nav.${screen}`)}>
      <Alert color="blue" icon={<IconClock size={18} />} title={t('coming.title')} data-testid={`coming-${screen}`}>
        <Text size="sm">{t(`coming.${screen}`)}</Text>
      </Alert>
      <Text size="sm" fw={600}>
        {t('coming.planned')}
      </Text>
      <List size="sm">
        {items.map((item) => (
          <List.Item key={item}>{item}</List.Item>
        ))}
      </List>
    </Page>
  );
}
