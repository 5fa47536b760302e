// Saved new-run forms, by name, in localStorage.
import { DEFAULT_FORM, type RunForm } from './form';
import { SPEC_KEYS } from './schema';

const KEY = 'tunery.presets';

export function loadPresets(): Record<string, RunForm> {
  try {
    const raw = JSON.parse(localStorage.getItem(KEY) ?? '{}') as Record<string, Partial<RunForm>>;
    const out: Record<string, RunForm> = {};
    for (const [name, form] of Object.entries(raw)) out[name] = upgrade(form);
    return out;
  } catch {
    return {};
  }
}

/** A stored form with today's fields; spec keys an older dashboard kept as fields (pref_beta, ppo_epochs ...)
 * become stage options. */
function upgrade(stored: Partial<RunForm>): RunForm {
  const form = { ...DEFAULT_FORM, extra: { ...(stored.extra ?? {}) }, options: { ...(stored.options ?? {}) } } as RunForm & Record<string, unknown>;
  for (const [key, value] of Object.entries(stored)) {
    if (key === 'extra' || key === 'options') continue;
    if (key in DEFAULT_FORM) form[key] = value;
    else if (SPEC_KEYS[key] && !(key in form.options) && value !== '') form.options[key] = value;
  }
  return form;
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
