import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeWebSocket } from '../test/fakeWebSocket';
import { type JobEvent, JobStream, type StreamState, streamTarget, websocketUrl } from './jobStream';

function progress(seq: number, step: number, loss: number) {
  return { seq, type: 'progress', attempt: 1, step, total_steps: 10, epoch: 0.1, loss, elapsed_seconds: step };
}

describe('JobStream', () => {
  let events: JobEvent[];
  let states: StreamState[];
  let stream: JobStream;

  beforeEach(() => {
    vi.useFakeTimers();
    FakeWebSocket.reset();
    events = [];
    states = [];
    stream = new JobStream({
      url: (after) => `ws://host/api/jobs/j1/stream?after=${after}`,
      protocols: ['bearer', 'tok'],
      onEvent: (event) => events.push(event),
      onState: (state) => states.push(state),
      backoff: (attempt) => attempt * 100,
      WebSocketImpl: FakeWebSocket as unknown as typeof WebSocket,
    });
  });
  afterEach(() => {
    stream.stop();
    vi.useRealTimers();
  });

  it('reconnects after a drop and resumes after the last sequence number', () => {
    stream.start();
    const first = FakeWebSocket.last();
    expect(first.after).toBe(0);
    expect(first.protocols).toEqual(['bearer', 'tok']);
    first.accept();
    first.push(progress(1, 1, 2.5));
    first.push(progress(2, 2, 2.1));
    first.drop();
    expect(stream.state).toBe('reconnecting');
    expect(FakeWebSocket.instances).toHaveLength(1);

    vi.advanceTimersByTime(100);
    const second = FakeWebSocket.last();
    expect(FakeWebSocket.instances).toHaveLength(2);
    expect(second.after).toBe(2);
    second.accept();
    // a server may repeat what the client already has; it is dropped
    second.push(progress(2, 2, 2.1));
    second.push(progress(3, 3, 1.9));
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(stream.lastSeq).toBe(3);
    expect(states).toEqual(['connecting', 'open', 'reconnecting', 'open']);
  });

  it('backs off more after each failed attempt and resets once connected', () => {
    stream.start();
    FakeWebSocket.last().drop(); // never opened
    vi.advanceTimersByTime(99);
    expect(FakeWebSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(FakeWebSocket.instances).toHaveLength(2);
    FakeWebSocket.last().drop();
    vi.advanceTimersByTime(199);
    expect(FakeWebSocket.instances).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(FakeWebSocket.instances).toHaveLength(3);
    FakeWebSocket.last().accept();
    FakeWebSocket.last().drop();
    vi.advanceTimersByTime(100);
    expect(FakeWebSocket.instances).toHaveLength(4);
  });

  it('stops at the end message and does not reconnect', () => {
    const onEnd = vi.fn();
    stream = new JobStream({
      url: (after) => `ws://host/s?after=${after}`,
      onEvent: (event) => events.push(event),
      onEnd,
      WebSocketImpl: FakeWebSocket as unknown as typeof WebSocket,
    });
    stream.start();
    const socket = FakeWebSocket.last();
    socket.accept();
    socket.push({ seq: 1, type: 'finished', outcome: 'succeeded', step: 10 });
    socket.push({ type: 'end', status: 'succeeded', last_seq: 1 });
    expect(onEnd).toHaveBeenCalledWith({ type: 'end', status: 'succeeded', last_seq: 1 });
    expect(stream.state).toBe('ended');
    expect(socket.closedByClient).toBe(1000);
    vi.advanceTimersByTime(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it('does not reconnect once stopped, and ignores messages that are not events', () => {
    stream.start();
    const socket = FakeWebSocket.last();
    socket.accept();
    socket.onmessage?.(new MessageEvent('message', { data: 'not json' }));
    socket.push({ type: 'progress' }); // no seq
    stream.stop();
    expect(socket.closedByClient).toBe(1000);
    vi.advanceTimersByTime(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(events).toEqual([]);
  });

  it('starts after a known sequence number', () => {
    stream = new JobStream({ url: (after) => `ws://h/s?after=${after}`, after: 41, onEvent: () => {}, WebSocketImpl: FakeWebSocket as unknown as typeof WebSocket });
    stream.start();
    expect(FakeWebSocket.last().after).toBe(41);
  });
});

describe('stream URLs', () => {
  it('derives ws/wss from the page location', () => {
    expect(websocketUrl('/api/jobs/1/stream', { protocol: 'http:', host: 'localhost:8000' })).toBe('ws://localhost:8000/api/jobs/1/stream');
    expect(websocketUrl('/x', { protocol: 'https:', host: 'tunery.example.com' })).toBe('wss://tunery.example.com/x');
  });

  it('sends a token as a subprotocol when it can, else as ?token=', () => {
    const safe = streamTarget('j 1', 'tnt_abc.def');
    expect(safe.protocols).toEqual(['bearer', 'tnt_abc.def']);
    expect(safe.url(5)).toBe(`ws://${window.location.host}/api/jobs/j%201/stream?after=5`);
    const odd = streamTarget('j1', 'a/b=');
    expect(odd.protocols).toBeUndefined();
    expect(odd.url(0)).toContain('after=0&token=a%2Fb%3D');
  });
});
