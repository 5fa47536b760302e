// Saved new-run forms, by name, in localStorage.
import { DEFAULT_FORM, type RunForm } from './form';

const KEY = 'tunery.presets';

export function loadPresets(): Record<string, RunForm> {
  try {
    const raw = JSON.parse(localStorage.getItem(KEY) ?? '{}') as Record<string, Partial<RunForm>>;
    const out: Record<string, RunForm> = {};
    for (const [name, form] of Object.entries(raw)) out[name] = { ...DEFAULT_FORM, ...form, extra: { ...(form.extra ?? {}) } };
    return out;
  } catch {
    return {};
  }
}

export function savePreset(name: string, form: RunForm): void {
  const all = loadPresets();
  all[name] = form;
  localStorage.setItem(KEY, JSON.stringify(all));
}

export function deletePreset(name: string): void {
  const all = loadPresets();
  delete all[name];
  localStorage.setItem(KEY, JSON.stringify(all));
}
