import { MantineProvider } from '@mantine/core';
import { render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { I18nextProvider, useTranslation } from 'react-i18next';
import { describe, expect, it } from 'vitest';
import { LanguageSwitch } from '../components/Layout';
import openapi from '../../openapi.json';
import { STAGES } from '../test/stages';
import { EVAL_CATALOG } from '../test/evaluation';
import { METRIC_TEXT_ZH, metricText } from './evalText';
import { EXPORT_CATALOG } from '../test/exports';
import { requestEnum } from '../export/form';
import { FORMAT_TEXT_ZH, formatText, GGUF_SUMMARY_ZH, ggufSummary } from './exportText';
import { en } from './en';
import i18n from './index';
import { STAGE_TEXT_ZH, stageText } from './stageText';
import { zh } from './zh';

function keys(value: unknown, prefix = ''): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [prefix];
  return Object.entries(value).flatMap(([key, inner]) => keys(inner, prefix ? `${prefix}.${key}` : key));
}

function Title() {
  const { t } = useTranslation();
  return <h1>{t('nav.overview')}</h1>;
}

describe('i18n', () => {
  it('has a Chinese text for every English one', () => {
    expect(keys(zh).sort()).toEqual(keys(en).sort());
    for (const key of keys(zh)) {
      const value = key.split('.').reduce<unknown>((node, part) => (node as Record<string, unknown>)[part], zh);
      expect(value, key).not.toBe('');
    }
  });

  it("has a Chinese text for every stage of the spec, and the catalog's own English", () => {
    const stages = (openapi as unknown as { components: { schemas: { MethodSection: { properties: { stage: { enum: string[] } } } } } }).components.schemas.MethodSection.properties.stage.enum;
    expect(Object.keys(STAGE_TEXT_ZH).sort()).toEqual([...stages].sort());
    const dpo = STAGES.find((stage) => stage.name === 'dpo')!;
    expect(stageText(dpo, 'en')).toEqual({ title: dpo.title, summary: dpo.summary, data_help: dpo.data_help });
    expect(stageText(dpo, 'zh').data_help).toMatch(/偏好对/);
    // a stage without a translation yet shows the catalog's text
    expect(stageText({ ...dpo, name: 'new' }, 'zh').title).toBe(dpo.title);
  });

  it("has a Chinese text for every evaluation metric, and the catalog's own English", () => {
    // the test catalog is a copy of tunery.spec.eval_metrics.METRICS
    const names = EVAL_CATALOG.metrics.map((metric) => metric.name);
    expect(Object.keys(METRIC_TEXT_ZH).sort()).toEqual([...names].sort());
    const bleu = EVAL_CATALOG.metrics[0];
    expect(metricText(bleu, 'en')).toEqual({ title: bleu.title, summary: bleu.summary });
    expect(metricText({ ...bleu, name: 'new' }, 'zh').title).toBe(bleu.title);
    expect(metricText(EVAL_CATALOG.metrics.find((metric) => metric.name === 'exact_match')!, 'zh').title).toBe('完全匹配');
  });

  it("has a Chinese text for every export format and GGUF type, and the catalog's own English", () => {
    // the spec's lists (openapi.json) and the test catalog (a copy of tunery.spec.export_formats) agree
    const formats = EXPORT_CATALOG.formats.map((format) => format.name);
    const types = EXPORT_CATALOG.gguf_types.map((type) => type.name);
    expect(requestEnum('formats').sort()).toEqual([...formats].sort());
    expect(requestEnum('gguf_types').sort()).toEqual([...types].sort());
    expect(Object.keys(FORMAT_TEXT_ZH).sort()).toEqual([...formats].sort());
    expect(Object.keys(GGUF_SUMMARY_ZH).sort()).toEqual([...types].sort());
    const gguf = EXPORT_CATALOG.formats[1];
    expect(formatText(gguf, 'en')).toEqual({ title: gguf.title, summary: gguf.summary });
    expect(formatText({ ...gguf, name: 'new' }, 'zh').title).toBe(gguf.title);
    expect(ggufSummary(EXPORT_CATALOG.gguf_types[5], 'zh')).toMatch(/4 位/);
  });

  it('switches language and remembers the choice', async () => {
    await i18n.changeLanguage('en');
    const user = userEvent.setup();
    render(
      <MantineProvider env="test">
        <I18nextProvider i18n={i18n}>
          <Title />
          <LanguageSwitch />
        </I18nextProvider>
      </MantineProvider>,
    );
    expect(screen.getByRole('heading')).toHaveTextContent('Overview');
    await user.click(screen.getByTestId('language-switch'));
    await user.click(await screen.findByRole('option', { name: '中文' }));
    expect(await screen.findByRole('heading')).toHaveTextContent('总览');
    expect(localStorage.getItem('tunery.lang')).toBe('zh');
    expect(document.documentElement.lang).toBe('zh-CN');
    await i18n.changeLanguage('en');
  });
});
