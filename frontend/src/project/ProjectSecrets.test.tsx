import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { installFakeApi, PROJECT, USER } from '../test/fakeApi';
import { renderPage } from '../test/render';
import { ProjectSecrets, secretProblems } from './ProjectSecrets';

const SECRET = { name: 'HF_TOKEN', created_at: '2025-01-01T00:00:00Z', updated_at: '2025-01-02T00:00:00Z' };

function api() {
  let secrets = [SECRET];
  const requests = installFakeApi({
    'GET /api/auth/me': () => USER,
    'GET /api/projects': () => [PROJECT],
    'GET /api/projects/p1/secrets': () => secrets,
    'PUT /api/projects/p1/secrets/MS_TOKEN': () => {
      secrets = [...secrets, { ...SECRET, name: 'MS_TOKEN' }];
      return secrets[1];
    },
    'PUT /api/projects/p1/secrets/HF_TOKEN': () => SECRET,
    'DELETE /api/projects/p1/secrets/HF_TOKEN': () => {
      secrets = secrets.filter((secret) => secret.name !== 'HF_TOKEN');
      return new Response(null, { status: 204 });
    },
  });
  return requests;
}

describe('project secrets', () => {
  it('checks a secret before sending it', () => {
    expect(secretProblems('', '')).toEqual({ name: 'name', value: 'value' });
    expect(secretProblems('HF TOKEN', 'x')).toEqual({ name: 'nameChars' });
    expect(secretProblems('a/b', 'x')).toEqual({ name: 'nameChars' });
    expect(secretProblems('HF_TOKEN', 'hf_x')).toEqual({});
  });

  it('lists names only, adds one (the value never comes back), replaces and deletes after confirming', async () => {
    const requests = api();
    const user = userEvent.setup({ delay: null });
    renderPage(<ProjectSecrets projectId="p1" />);
    const table = await screen.findByTestId('secrets-table');
    await waitFor(() => expect(within(table).getAllByTestId('secret-row').map((row) => row.dataset.name)).toEqual(['HF_TOKEN']));
    // nothing is sent until the form is complete
    await user.click(screen.getByTestId('secret-save'));
    expect(await screen.findByText('Give it a name.')).toBeInTheDocument();
    expect(screen.getByText('Enter the value.')).toBeInTheDocument();
    expect(requests.filter((r) => r.method === 'PUT')).toEqual([]);
    await user.type(screen.getByTestId('secret-name'), 'MS_TOKEN');
    await user.type(screen.getByTestId('secret-value'), 'ms-secret-value');
    expect(screen.getByTestId('secret-value')).toHaveAttribute('type', 'password');
    await user.click(screen.getByTestId('secret-save'));
    await waitFor(() => expect(within(table).getAllByTestId('secret-row').map((row) => row.dataset.name)).toEqual(['HF_TOKEN', 'MS_TOKEN']));
    const put = requests.find((r) => r.method === 'PUT')!;
    expect([put.path, put.body]).toEqual(['/api/projects/p1/secrets/MS_TOKEN', { value: 'ms-secret-value' }]);
    // the value leaves the form and is shown nowhere
    expect(screen.getByTestId('secret-value')).toHaveValue('');
    expect(document.body.textContent).not.toContain('ms-secret-value');
    // replace: the name is filled in, the button says so
    await user.click(within(within(table).getAllByTestId('secret-row')[0]).getByTestId('secret-replace'));
    expect(screen.getByTestId('secret-name')).toHaveValue('HF_TOKEN');
    expect(screen.getByTestId('secret-save')).toHaveTextContent('Replace');
    await user.type(screen.getByTestId('secret-value'), 'hf_new');
    await user.click(screen.getByTestId('secret-save'));
    await waitFor(() => expect(requests.filter((r) => r.method === 'PUT').map((r) => r.path)).toContain('/api/projects/p1/secrets/HF_TOKEN'));
    // delete asks first
    await user.click(within(within(table).getAllByTestId('secret-row')[0]).getByTestId('secret-delete'));
    expect(await screen.findByText('Delete HF_TOKEN? Exports that name it can no longer push.')).toBeInTheDocument();
    await user.click(screen.getByTestId('secret-delete-confirm'));
    await waitFor(() => expect(within(table).getAllByTestId('secret-row').map((row) => row.dataset.name)).toEqual(['MS_TOKEN']));
    expect(requests.filter((r) => r.method === 'DELETE').map((r) => r.path)).toEqual(['/api/projects/p1/secrets/HF_TOKEN']);
  });
});
