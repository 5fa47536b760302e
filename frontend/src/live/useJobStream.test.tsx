import { act, render, screen } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { setToken } from '../auth/token';
import { FakeWebSocket } from '../test/fakeWebSocket';
import { metricPoints } from './series';
import { useJobStream } from './useJobStream';

function Probe({ jobId }: { jobId: string }) {
  const view = useJobStream(jobId, { WebSocketImpl: FakeWebSocket as unknown as typeof WebSocket, backoff: () => 10, batchMs: 5 });
  const points = metricPoints(view.events);
  return (
    <div>
      <span data-testid="state">{view.state}</span>
      <span data-testid="seq">{view.lastSeq}</span>
      <span data-testid="losses">{points.map((p) => p.loss ?? '-').join(',')}</span>
      <span data-testid="end">{view.end?.status ?? ''}</span>
    </div>
  );
}

const wait = (ms: number) => act(() => new Promise((resolve) => setTimeout(resolve, ms)));

describe('useJobStream', () => {
  beforeEach(() => {
    FakeWebSocket.reset();
    setToken('tnt_token.sig');
  });
  afterEach(() => setToken(null));

  it('keeps every event across a reconnect, asking the server only for what it missed', async () => {
    const { unmount } = render(<Probe jobId="job-1" />);
    const first = FakeWebSocket.last();
    expect(first.url).toMatch(/\/api\/jobs\/job-1\/stream\?after=0$/);
    expect(first.protocols).toEqual(['bearer', 'tnt_token.sig']);
    act(() => {
      first.accept();
      first.push({ seq: 1, type: 'started', total_steps: 3 });
      first.push({ seq: 2, type: 'progress', step: 1, loss: 2.0 });
    });
    await wait(20);
    expect(screen.getByTestId('losses').textContent).toBe('2');
    act(() => first.drop());
    expect(screen.getByTestId('state').textContent).toBe('reconnecting');
    await wait(30);
    const second = FakeWebSocket.last();
    expect(second).not.toBe(first);
    expect(second.after).toBe(2);
    act(() => {
      second.accept();
      second.push({ seq: 3, type: 'progress', step: 2, loss: 1.5 });
      second.push({ seq: 4, type: 'eval', step: 2, epoch: 1, metrics: { eval_loss: 1.7 } });
      second.push({ seq: 5, type: 'finished', outcome: 'succeeded', step: 2 });
      second.push({ type: 'end', status: 'succeeded', last_seq: 5 });
    });
    await wait(20);
    expect(screen.getByTestId('losses').textContent).toBe('2,1.5');
    expect(screen.getByTestId('seq').textContent).toBe('5');
    expect(screen.getByTestId('state').textContent).toBe('ended');
    expect(screen.getByTestId('end').textContent).toBe('succeeded');
    unmount();
    await wait(30);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it('closes the socket when the page goes away', async () => {
    const { unmount } = render(<Probe jobId="job-2" />);
    const socket = FakeWebSocket.last();
    act(() => socket.accept());
    unmount();
    expect(socket.closedByClient).toBe(1000);
    await wait(30);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });
});
