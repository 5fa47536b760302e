// The stage catalog's texts (title, summary, what the data must hold) in the user's language. English comes
// from the server's catalog itself; Chinese from the table below, keyed by stage name. A stage the table does
// not know yet shows the catalog's English text.
import { useTranslation } from 'react-i18next';
import type { StageInfo } from '../stages/catalog';

export interface StageText {
  title: string;
  summary: string;
  data_help: string;
}

export const STAGE_TEXT_ZH: Record<string, StageText> = {
  sft: {
    title: '监督微调',
    summary: '学习按数据集中的回答方式作答。',
    data_help: '对话或指令/回答行；训练回答部分，提示部分被遮蔽。',
  },
  pt: {
    title: '继续预训练',
    summary: '在纯文本上做下一个词预测（领域适配）。',
    data_help: '纯文本行（text 列或 txt 文件）；每个 token 都参与训练。',
  },
  rm: {
    title: '奖励模型',
    summary: '学习给回答打分：一对回答中被选中的得分高于被拒绝的。',
    data_help: '偏好对（ranking: true）：一个提示，加上一个被选中的回答和一个被拒绝的回答。',
  },
  dpo: {
    title: '偏好优化（DPO、IPO、hinge、ORPO、SimPO）',
    summary: '无需奖励模型，让模型靠近被选中的回答、远离被拒绝的回答。',
    data_help: '偏好对（ranking: true）：一个提示，加上一个被选中的回答和一个被拒绝的回答。',
  },
  kto: {
    title: 'KTO',
    summary: '从标注为可取或不可取的回答中学习，不需要成对数据。',
    data_help: '一个提示、一个回答，以及说明该回答是否可取的布尔标签（kto_tag）。',
  },
  ppo: {
    title: '基于奖励模型的 PPO',
    summary: '生成回答，用奖励模型打分，并据此优化策略（RLHF）。',
    data_help: '提示（回答列会被忽略）；需要用 rm 阶段训练的奖励模型或一个 API。',
  },
  grpo: {
    title: '基于奖励函数的 GRPO',
    summary: '每个提示采样多个回答，强化奖励函数评分高于组内平均的回答。',
    data_help: '提示，可带一个参考答案列，供 exact_match 等奖励函数比对。',
  },
};

export function stageText(stage: StageInfo, language: string): StageText {
  const translated = language.startsWith('zh') ? STAGE_TEXT_ZH[stage.name] : undefined;
  return translated ?? { title: stage.title, summary: stage.summary, data_help: stage.data_help };
}

/** ``stageText`` in the current language. */
export function useStageText(): (stage: StageInfo) => StageText {
  const { i18n } = useTranslation();
  return (stage) => stageText(stage, i18n.language);
}
