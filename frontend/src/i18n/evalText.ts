// The evaluation catalog's texts (metric titles and summaries, benchmark titles) in the user's language.
// English comes from the server's catalog itself (GET /api/evaluations/catalog, tunery.spec.eval_metrics);
// Chinese from the tables below, keyed by name. A metric or benchmark the tables do not know yet shows the
// catalog's English text.
import { useTranslation } from 'react-i18next';
import type { BenchmarkInfo, MetricInfo } from '../evaluate/queries';

export interface MetricText {
  title: string;
  summary: string;
}

export const METRIC_TEXT_ZH: Record<string, MetricText> = {
  'bleu-4': { title: 'BLEU-4', summary: '每个样本的 4-gram BLEU（LLaMA-Factory 的平滑方式），取平均' },
  'rouge-1': { title: 'ROUGE-1', summary: '每个样本的一元词 F1（中文按 jieba 分词），取平均' },
  'rouge-2': { title: 'ROUGE-2', summary: '每个样本的二元词 F1，取平均' },
  'rouge-l': { title: 'ROUGE-L', summary: '每个样本的最长公共子序列 F1，取平均' },
  exact_match: { title: '完全匹配', summary: '与标签相同的回答（去掉首尾空白）' },
  length_mean: { title: '平均长度', summary: '每个回答的 token 数，取平均' },
  length_max: { title: '最长回答', summary: '最长回答的 token 数' },
  accuracy: { title: '准确率', summary: '答对的基准测试题目' },
  judge_score: { title: '评审得分', summary: '评审模型给每个回答的分数，取平均' },
  judge_failures: { title: '评审失败', summary: '评审模型没有给出可用分数的回答' },
  win_rate_a: { title: 'A 胜', summary: '成对比较：评审认为 A 更好的提示' },
  win_rate_b: { title: 'B 胜', summary: '成对比较：评审认为 B 更好的提示' },
  tie_rate: { title: '平局', summary: '成对比较：评审判为平局的提示' },
  samples_per_second: { title: '样本/秒', summary: '每秒评估的行数' },
};

export const BENCHMARK_TITLE_ZH: Record<string, string> = {
  mmlu: 'MMLU（英文多学科选择题）',
  cmmlu: 'CMMLU（中文多学科选择题）',
  ceval: 'C-Eval（中文基础模型评测）',
  mmlu_sample: 'MMLU 样例（英文多学科选择题）',
  cmmlu_sample: 'CMMLU 样例（中文多学科选择题）',
  ceval_sample: 'C-Eval 样例（中文基础模型评测）',
};

export function metricText(metric: MetricInfo, language: string): MetricText {
  const translated = language.startsWith('zh') ? METRIC_TEXT_ZH[metric.name] : undefined;
  return translated ?? { title: metric.title, summary: metric.summary };
}

export function benchmarkTitle(benchmark: BenchmarkInfo, language: string): string {
  return (language.startsWith('zh') ? BENCHMARK_TITLE_ZH[benchmark.task] : undefined) ?? benchmark.title;
}

/** Texts for a metric name in the current language; a name missing from the catalog is its own title. */
export function useEvalText(metrics: readonly MetricInfo[] | undefined) {
  const { i18n } = useTranslation();
  return {
    metric: (name: string): MetricText => {
      const info = metrics?.find((metric) => metric.name === name);
      return info ? metricText(info, i18n.language) : { title: name, summary: '' };
    },
    benchmark: (benchmark: BenchmarkInfo) => benchmarkTitle(benchmark, i18n.language),
  };
}
