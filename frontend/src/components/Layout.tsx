// The app frame: navigation (a drawer on phones), project picker, language switch, account menu.
import { AppShell, Burger, Group, Menu, NavLink, ScrollArea, Select, Text, UnstyledButton } from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import {
  IconChartLine,
  IconDatabase,
  IconFileExport,
  IconGauge,
  IconList,
  IconLogout,
  IconMessages,
  IconPlus,
  IconSettings,
  IconStack2,
  IconTestPipe,
  IconUser,
} from '@tabler/icons-react';
import type { ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useLocation } from 'react-router';
import { useAuth } from '../auth/AuthContext';
import { LANGUAGES, setLanguage } from '../i18n';
import { useProject } from '../project/ProjectContext';

const NAV = [
  { to: '/', key: 'nav.overview', icon: IconGauge },
  { to: '/runs', key: 'nav.runs', icon: IconList },
  { to: '/runs/new', key: 'nav.newRun', icon: IconPlus },
  { to: '/compare', key: 'nav.compare', icon: IconChartLine },
  { to: '/datasets', key: 'nav.datasets', icon: IconDatabase },
  { to: '/models', key: 'nav.models', icon: IconStack2 },
  { to: '/chat', key: 'nav.chat', icon: IconMessages },
  { to: '/evaluate', key: 'nav.evaluate', icon: IconTestPipe },
  { to: '/export', key: 'nav.export', icon: IconFileExport },
  { to: '/settings', key: 'nav.settings', icon: IconSettings },
] as const;

function active(pathname: string, to: string): boolean {
  if (to === '/') return pathname === '/';
  if (to === '/runs') return pathname === '/runs' || (pathname.startsWith('/runs/') && pathname !== '/runs/new');
  return pathname === to || pathname.startsWith(`${to}/`);
}

export function LanguageSwitch({ compact = false }: { compact?: boolean }) {
  const { i18n, t } = useTranslation();
  return (
    <Select
      aria-label={t('common.language')}
      data-testid="language-switch"
      size="xs"
      w={compact ? 92 : 110}
      data={LANGUAGES.map((item) => ({ value: item.value, label: item.label }))}
      value={i18n.language.startsWith('zh') ? 'zh' : 'en'}
      onChange={(value) => value && setLanguage(value)}
      allowDeselect={false}
      comboboxProps={{ withinPortal: true }}
    />
  );
}

export function Layout({ children }: { children: ReactNode }) {
  const [opened, { toggle, close }] = useDisclosure();
  const { t } = useTranslation();
  const { pathname } = useLocation();
  const { user, signOut } = useAuth();
  const { projects, projectId, select } = useProject();
  return (
    <AppShell
      header={{ height: 56 }}
      navbar={{ width: 220, breakpoint: 'sm', collapsed: { mobile: !opened } }}
      padding="md"
    >
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap" gap="xs">
          <Group gap="xs" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label={t('nav.menu')} />
            <Text fw={800} size="lg" c="indigo" component={Link} to="/">
              Tunery
            </Text>
          </Group>
          <Group gap="xs" wrap="nowrap">
            {projects.length > 0 && (
              <Select
                aria-label={t('common.project')}
                data-testid="project-switch"
                size="xs"
                w={{ base: 120, sm: 180 }}
                data={projects.map((p) => ({ value: p.id, label: p.name }))}
                value={projectId}
                onChange={(value) => value && select(value)}
                allowDeselect={false}
              />
            )}
            <LanguageSwitch compact />
            <Menu position="bottom-end" withinPortal>
              <Menu.Target>
                <UnstyledButton aria-label={t('nav.account')} data-testid="account-menu">
                  <IconUser size={22} />
                </UnstyledButton>
              </Menu.Target>
              <Menu.Dropdown>
                <Menu.Label>{user?.email ?? '…'}</Menu.Label>
                <Menu.Item component={Link} to="/settings" leftSection={<IconSettings size={16} />}>
                  {t('nav.settings')}
                </Menu.Item>
                <Menu.Item onClick={signOut} leftSection={<IconLogout size={16} />} data-testid="sign-out">
                  {t('nav.signOut')}
                </Menu.Item>
              </Menu.Dropdown>
            </Menu>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs">
        <AppShell.Section grow component={ScrollArea}>
          {NAV.map((item) => (
            <NavLink
              key={item.to}
              component={Link}
              to={item.to}
              label={t(item.key)}
              leftSection={<item.icon size={18} />}
              active={active(pathname, item.to)}
              onClick={close}
              data-testid={`nav-${item.to.replace(/\//g, '') || 'overview'}`}
            />
          ))}
        </AppShell.Section>
      </AppShell.Navbar>
      <AppShell.Main>{children}</AppShell.Main>
    </AppShell>
  );
}
