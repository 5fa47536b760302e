// The export catalog's texts (format titles and summaries, GGUF type summaries) in the user's language.
// English comes from the server's catalog itself (GET /api/exports/catalog, tunery.spec.export_formats);
// Chinese from the tables below, keyed by name. A format or type the tables do not know yet shows the
// catalog's English text.
import { useTranslation } from 'react-i18next';
import type { ExportFormatInfo, GgufTypeInfo } from '../export/queries';

export interface FormatText {
  title: string;
  summary: string;
}

export const FORMAT_TEXT_ZH: Record<string, FormatText> = {
  hf: { title: '合并后的模型（safetensors）', summary: '基础模型与适配器合并，分片的 safetensors' },
  gguf: { title: 'GGUF（llama.cpp、Ollama）', summary: 'llama.cpp 的转换器和量化器' },
  onnx: { title: 'ONNX（onnxruntime）', summary: 'optimum 导出，带 past key values 的解码器' },
  gptq: { title: 'GPTQ（4/8 位）', summary: 'GPTQModel 用校准数据集量化' },
};

export const GGUF_SUMMARY_ZH: Record<string, string> = {
  F32: '全精度，作为质量基准',
  F16: '半精度，几乎没有损失',
  BF16: 'bfloat16，与训练时相同',
  Q8_0: '8 位，接近无损',
  Q4_0: '4 位（旧格式），最小最快',
  Q4_K_M: '4 位 k-quant，本地聊天的常用选择',
};

function zh(language: string): boolean {
  return language.startsWith('zh');
}

export function formatText(format: ExportFormatInfo, language: string): FormatText {
  return (zh(language) ? FORMAT_TEXT_ZH[format.name] : undefined) ?? { title: format.title, summary: format.summary };
}

export function ggufSummary(type: GgufTypeInfo, language: string): string {
  return (zh(language) ? GGUF_SUMMARY_ZH[type.name] : undefined) ?? type.summary;
}

/** Texts for catalog names in the current language; a name missing from the catalog is its own title. */
export function useExportText(formats: readonly ExportFormatInfo[] | undefined, ggufTypes: readonly GgufTypeInfo[] | undefined) {
  const { i18n } = useTranslation();
  return {
    format: (name: string): FormatText => {
      const info = formats?.find((format) => format.name === name);
      return info ? formatText(info, i18n.language) : { title: name, summary: '' };
    },
    gguf: (name: string): string => {
      const info = ggufTypes?.find((type) => type.name === name);
      return info ? ggufSummary(info, i18n.language) : '';
    },
  };
}
