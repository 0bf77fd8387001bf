import { describe, expect, it } from 'vitest';
import { gateUntilStyled } from './styleGate.js';

function clock() {
  const c = { t: 0, frames: [] };
  c.schedule = (fn) => c.frames.push(fn);
  c.now = () => c.t;
  c.frame = (ms = 16) => {
    c.t += ms;
    const due = c.frames.splice(0);
    due.forEach((fn) => fn());
  };
  return c;
}

describe('gateUntilStyled', () => {
  it('shows a host whose stylesheet already applies at once, scheduling nothing', () => {
    const host = { style: { visibility: '' } };
    const c = clock();
    gateUntilStyled(host, () => true, c.schedule, c.now);
    expect(host.style.visibility).toBe('');
    expect(c.frames).toHaveLength(0);
  });

  it('hides the host until the stylesheet applies, then shows it', () => {
    const host = { style: { visibility: '' } };
    const c = clock();
    let styled = false;
    gateUntilStyled(host, () => styled, c.schedule, c.now);
    expect(host.style.visibility).toBe('hidden');
    c.frame();
    c.frame();
    expect(host.style.visibility).toBe('hidden');
    styled = true;
    c.frame();
    expect(host.style.visibility).toBe('');
    expect(c.frames).toHaveLength(0); // stops checking
  });

  it('shows the host after the time limit even if the stylesheet never loads', () => {
    const host = { style: { visibility: '' } };
    const c = clock();
    gateUntilStyled(host, () => false, c.schedule, c.now, 100);
    c.frame(60);
    expect(host.style.visibility).toBe('hidden');
    c.frame(60);
    expect(host.style.visibility).toBe('');
    expect(c.frames).toHaveLength(0);
  });

  it('the returned function shows the host and stops the checks', () => {
    const host = { style: { visibility: '' } };
    const c = clock();
    const stop = gateUntilStyled(host, () => false, c.schedule, c.now);
    stop();
    expect(host.style.visibility).toBe('');
    c.frame();
    expect(c.frames).toHaveLength(0);
  });
});
