import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { installFakeApi, PROJECT, USER } from '../test/fakeApi';
import { renderPage } from '../test/render';
import { Chat } from './Chat';

const BASE = { 'GET /api/auth/me': () => USER, 'GET /api/projects': () => [PROJECT] };

function sse(chunks: string[]): Response {
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const text of chunks) controller.enqueue(encoder.encode(`data: ${JSON.stringify({ choices: [{ delta: { content: text } }] })}\n\n`));
      controller.enqueue(encoder.encode('data: [DONE]\n\n'));
      controller.close();
    },
  });
  return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
}

describe('chat', () => {
  it('starts with the model a link names (e.g. a fresh export), listed or not yet', async () => {
    installFakeApi({ ...BASE, 'GET /v1/models': () => ({ object: 'list', data: [{ id: 'tiny' }] }) });
    renderPage(<Chat />, { route: `/chat?model=${encodeURIComponent('ft:tiny:demo:x1:gguf-f16')}` });
    await waitFor(() => expect(screen.getByTestId('chat-model')).toHaveValue('ft:tiny:demo:x1:gguf-f16'));
    expect(screen.getAllByTestId('chat-transcript')).toHaveLength(1);
  });

  it('says so when the server has no /v1 endpoints, and sends nothing', async () => {
    const requests = installFakeApi(BASE);
    renderPage(<Chat />);
    expect(await screen.findByTestId('chat-unavailable')).toHaveTextContent('/v1/models');
    expect(screen.getByTestId('chat-input')).toBeDisabled();
    expect(requests.filter((r) => r.path.startsWith('/v1/chat'))).toEqual([]);
  });

  it('streams a multi-turn conversation with the system prompt and sampling settings', async () => {
    const answers = [['Hel', 'lo!'], ['Fine', ', thanks.']];
    const requests = installFakeApi({
      ...BASE,
      'GET /v1/models': () => ({ object: 'list', data: [{ id: 'tiny' }, { id: 'run-1' }] }),
      'POST /v1/chat/completions': () => sse(answers.shift() ?? []),
    });
    const user = userEvent.setup({ delay: null });
    renderPage(<Chat />);
    await waitFor(() => expect(screen.getByTestId('chat-model')).toBeEnabled());
    await user.click(screen.getByTestId('chat-model'));
    await user.click(await screen.findByRole('option', { name: 'run-1' }));
    await user.type(screen.getByLabelText('System prompt'), 'Be brief.');
    await user.type(screen.getByTestId('chat-input'), 'Hi{Enter}');
    const transcript = screen.getByTestId('chat-transcript');
    await waitFor(() => expect(within(transcript).getByText('Hello!')).toBeInTheDocument());
    await user.type(screen.getByTestId('chat-input'), 'How are you?{Enter}');
    await waitFor(() => expect(within(transcript).getByText('Fine, thanks.')).toBeInTheDocument());
    const sent = requests.filter((r) => r.path === '/v1/chat/completions').map((r) => r.body as Record<string, unknown>);
    expect(sent).toHaveLength(2);
    expect(sent[1]).toMatchObject({
      model: 'run-1',
      stream: true,
      temperature: 0.7,
      top_p: 0.9,
      max_tokens: 512,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello!' },
        { role: 'user', content: 'How are you?' },
      ],
    });
  });

  it('notes a finished answer without text instead of a blank bubble; the temperature goes to 0', async () => {
    const requests = installFakeApi({
      ...BASE,
      'GET /v1/models': () => ({ object: 'list', data: [{ id: 'tiny' }] }),
      'POST /v1/chat/completions': () => sse([]),
    });
    const user = userEvent.setup({ delay: null });
    renderPage(<Chat />);
    await waitFor(() => expect(screen.getByTestId('chat-model')).toBeEnabled());
    await user.click(screen.getByTestId('chat-model'));
    await user.click(await screen.findByRole('option', { name: 'tiny' }));
    // the thumb takes the keyboard (what the end-to-end test does for a deterministic answer)
    const thumb = within(screen.getByTestId('chat-temperature')).getByRole('slider', { name: 'Temperature' });
    thumb.focus();
    await user.keyboard('{Home}');
    expect(thumb).toHaveAttribute('aria-valuenow', '0');
    await user.type(screen.getByTestId('chat-input'), 'Hi{Enter}');
    expect(await screen.findByTestId('chat-empty-answer')).toHaveTextContent('(no text: the model stopped at once)');
    expect(requests.find((r) => r.path === '/v1/chat/completions')!.body).toMatchObject({ temperature: 0 });
  });
});
