import { describe, expect, it } from 'vitest';
import { EXPORT_CATALOG } from '../test/exports';
import { defaultForm, estimateRequest, formProblems, toRequest, type ExportForm } from './form';

const keys = (form: ExportForm) => formProblems(form).map((problem) => problem.key);

describe('export form', () => {
  it('starts from the spec defaults, limited to what the catalog offers', () => {
    const form = defaultForm(EXPORT_CATALOG, 'tiny');
    expect(form.model).toBe('tiny');
    expect(form.formats).toEqual(['hf']);
    expect(form.gguf_types).toEqual(['F16', 'Q4_K_M']);
    expect(form.dtype).toBe('auto');
    expect([form.export_size, form.ollama, form.verify, form.hub_private, form.legacy_format]).toEqual([5, true, true, true, false]);
    // a catalog without hf: the first format it has
    expect(defaultForm({ ...EXPORT_CATALOG, formats: EXPORT_CATALOG.formats.slice(1) }).formats).toEqual(['gguf']);
  });

  it('says what must be filled in', () => {
    const form = defaultForm(EXPORT_CATALOG);
    expect(keys(form)).toEqual(['model']);
    const ready = { ...form, model: 'ft:tiny:demo:j1' };
    expect(keys(ready)).toEqual([]);
    expect(keys({ ...ready, formats: [] })).toEqual(['formats']);
    expect(keys({ ...ready, formats: ['gguf'], gguf_types: [] })).toEqual(['ggufTypes']);
    expect(keys({ ...ready, extra_adapters: ['ft:tiny:demo:j1'] })).toEqual(['adapterIsModel']);
    expect(keys({ ...ready, formats: ['gptq'], gptq_bits: null })).toEqual(['gptqBits', 'gptqDataset']);
    expect(keys({ ...ready, export_size: '' })).toEqual(['exportSize']);
    expect(keys({ ...ready, export_size: 0.5 })).toEqual(['exportSize']);
    expect(keys({ ...ready, hub_model_id: 'no-owner' })).toEqual(['hubRepo', 'hubSecret']);
    expect(keys({ ...ready, hub_model_id: 'me/tiny', hub_token_secret: 'HF_TOKEN' })).toEqual([]);
  });

  it('sends only what applies: GGUF types and the Modelfile with GGUF, GPTQ settings with GPTQ, the token with a repo', () => {
    const form: ExportForm = {
      ...defaultForm(EXPORT_CATALOG, 'ft:tiny:demo:j1'),
      formats: ['hf'],
      gguf_types: ['F16'],
      gptq_bits: '4',
      gptq_dataset_version_id: 'v1',
      hub_token_secret: 'HF_TOKEN',
      name: '  ',
    };
    const body = toRequest(form);
    expect(body).toMatchObject({ formats: ['hf'], gguf_types: null, ollama: false, gptq_bits: null, gptq_dataset_version_id: null, hub_model_id: null, hub_token_secret: null, name: null });
    const full = toRequest({ ...form, formats: ['gguf', 'gptq'], hub_model_id: ' me/tiny ', name: 'v2' });
    expect(full).toMatchObject({ formats: ['gguf', 'gptq'], gguf_types: ['F16'], ollama: true, gptq_bits: 4, gptq_dataset_version_id: 'v1', hub_model_id: 'me/tiny', hub_token_secret: 'HF_TOKEN', name: 'v2' });
  });

  it('asks for an estimate once there is a model and a format', () => {
    const form = defaultForm(EXPORT_CATALOG);
    expect(estimateRequest(form)).toBeNull();
    expect(estimateRequest({ ...form, model: 'tiny', formats: [] })).toBeNull();
    expect(estimateRequest({ ...form, model: 'tiny', formats: ['hf', 'gguf'], gguf_types: ['Q8_0'], dtype: 'bfloat16' })).toEqual({ model: 'tiny', formats: ['hf', 'gguf'], gguf_types: ['Q8_0'], dtype: 'bfloat16', gptq_bits: 4 });
  });
});
