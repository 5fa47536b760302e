// Export fixtures for component tests: the catalog as GET /api/exports/catalog answers it (a copy of
// tunery.spec.export_formats), a project's exports, the served models they come from.
import type { ExportArtifact, ExportCatalog, ExportRun } from '../export/queries';

export const EXPORT_CATALOG: ExportCatalog = {
  formats: [
    { name: 'hf', title: 'Merged model (safetensors)', serve_engine: 'hf', needs_gpu: false, summary: 'base + adapters merged, sharded safetensors' },
    { name: 'gguf', title: 'GGUF (llama.cpp, Ollama)', serve_engine: 'gguf', needs_gpu: false, summary: "llama.cpp's converter and quantizer" },
    { name: 'onnx', title: 'ONNX (onnxruntime)', serve_engine: null, needs_gpu: false, summary: "optimum's exporter, decoder with past key values" },
    { name: 'gptq', title: 'GPTQ (4/8-bit)', serve_engine: 'hf', needs_gpu: true, summary: 'GPTQModel calibration on export_quantization_dataset' },
  ],
  gguf_types: [
    { name: 'F32', bits_per_weight: 32, summary: 'full precision, reference quality' },
    { name: 'F16', bits_per_weight: 16, summary: 'half precision, no measurable loss' },
    { name: 'BF16', bits_per_weight: 16, summary: 'bfloat16, as the model was trained' },
    { name: 'Q8_0', bits_per_weight: 8.5, summary: '8-bit, near lossless' },
    { name: 'Q4_0', bits_per_weight: 4.5, summary: '4-bit legacy, smallest and fastest' },
    { name: 'Q4_K_M', bits_per_weight: 4.85, summary: '4-bit k-quant, the usual choice for local chat' },
  ],
  default_gguf_types: ['F16', 'Q4_K_M'],
  dtypes: ['auto', 'float32', 'float16', 'bfloat16'],
};

export const SERVED = { object: 'list', data: [{ id: 'tiny' }, { id: 'ft:tiny:demo:j1' }, { id: 'ft:tiny:demo:j1:ckpt-50' }, { id: 'ft:tiny:demo:j2' }, { id: 'ft:other:demo:j3' }, { id: 'ft:tiny:demo:x1' }, { id: 'ft:tiny:demo:x1:gguf-f16' }] };

export const JOB = {
  project_id: 'p1', experiment_id: null, base_model_id: 'm1', parent_job_id: null, created_by: 'u1', kind: 'export' as const,
  cancel_requested: false, attempt: 1, max_attempts: 1, gpu_count: 0, progress: {}, last_seq: 10, error_code: null, error_message: null,
  best_checkpoint_step: null, stopped_early: false, created_at: '2025-01-03T00:00:00Z', queued_at: null, started_at: '2025-01-03T00:00:01Z',
  finished_at: '2025-01-03T00:02:00Z', spec: {}, resume_from: null, gpus: [], queue: 'cpu', worker_id: 'w1', output_dir: null, dataset_versions: [],
};

/** The jobs list (GET /api/jobs): runs j1, j2 and the export x1 (its merged model is served like a fine-tune). */
export const JOBS = {
  items: [
    { ...JOB, id: 'j1', name: 'first run', kind: 'train' as const, status: 'succeeded' as const },
    { ...JOB, id: 'j2', name: 'second run', kind: 'train' as const, status: 'succeeded' as const },
    { ...JOB, id: 'x1', name: 'chat gguf', status: 'succeeded' as const },
  ],
  next_cursor: null,
};

export function artifact(name: string, extra: Partial<ExportArtifact> = {}): ExportArtifact {
  return {
    id: `a-${name}`, name, kind: 'export', size_bytes: 1024, sha256: null, created_at: '2025-01-03T00:02:00Z', format: 'hf', quantization: null,
    serve_model_id: null, checks: {}, details: { source_job_id: 'j1', checkpoint_step: null, adapters: [], base_model: 'tiny' }, ...extra,
  } as ExportArtifact;
}

export const EXPORT_DONE: ExportRun = {
  job: { ...JOB, id: 'x1', name: 'chat gguf', status: 'succeeded' },
  source_model: 'ft:tiny:demo:j1',
  extra_adapters: ['ft:tiny:demo:j2'],
  // in the server's order (by name); the screen shows the models first
  artifacts: [
    artifact('Modelfile', { format: 'modelfile', size_bytes: 420 }),
    artifact('README.md', { format: 'card', size_bytes: 2048 }),
    artifact('gguf-F16', { format: 'gguf', quantization: 'F16', size_bytes: 26_214_400, serve_model_id: 'ft:tiny:demo:x1:gguf-f16', checks: { greedy_match: 1, perplexity_ratio: 1.0004 } }),
    artifact('gguf-Q4_K_M', { format: 'gguf', quantization: 'Q4_K_M', size_bytes: 8_388_608, checks: { greedy_match: 0.875, perplexity_ratio: 1.062 } }),
    artifact('model', { size_bytes: 52_428_800, serve_model_id: 'ft:tiny:demo:x1', checks: { greedy_match: 1 } }),
  ],
} as ExportRun;

export const EXPORT_RUNNING: ExportRun = {
  job: { ...JOB, id: 'x2', name: 'running export', status: 'running', finished_at: null, progress: { step: 1, total_steps: 4 } },
  source_model: 'tiny',
  extra_adapters: [],
  artifacts: [],
} as ExportRun;
