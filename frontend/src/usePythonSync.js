// Python sync: send the graph once per committed change (never per frame), and
// take Python's graph only when it bumps the revision. Pure parts in sync.js.
import { useCallback, useEffect, useRef } from 'react';
import { toPy } from './graph.js';
import { mergeFromPython, payloadOf, queueEvent, resendDue, scriptIdle, takeEcho, unackedEvents } from './sync.js';
import { primarySelection } from './selection.js';

export function usePythonSync({ data, store, api, commitSeq, refs, setGraph, history, onReplaced }) {
  const { nodesRef, edgesRef, revRef, primaryRef, busyRef, paletteRef } = refs;
  const lastSentRef = useRef(store.lastSent ?? null);
  const pySelRef = useRef(data.selected ?? null);
  // which project Python last put on the canvas (data.project: a number it changes for another project)
  const projectRef = useRef(store.project ?? (Number(data.project) || 0));
  const sentSelRef = useRef([]); // selections sent to Python and not yet echoed back (oldest first)
  const apiRef = useRef(api);
  apiRef.current = api;
  // delivery (sync.js resendDue): store.pending is the last payload sent and not yet acknowledged by Python's
  // render (data.ack); kept in the page-level store, so a remount (Build shown again) still sends it
  const ackRef = useRef(data.ack);
  ackRef.current = data.ack;

  // ---- sending ----
  // The graph once per committed change (`force`: also when unchanged, to carry a new one-shot action).
  const send = useCallback((force) => {
    const selected = primarySelection(nodesRef.current, primaryRef.current);
    primaryRef.current = selected;
    const text = JSON.stringify(payloadOf(nodesRef.current, edgesRef.current, selected, revRef.current));
    if (text === lastSentRef.current && !force) return;
    const prevSel = lastSentRef.current ? (JSON.parse(lastSentRef.current).selected ?? null) : undefined;
    lastSentRef.current = text;
    store.lastSent = text;
    if ((selected ?? null) !== prevSel) sentSelRef.current = [...sentSelRef.current, selected ?? null].slice(-20);
    performance.mark?.('layerlab:canvas:send');
    const seq = (store.seq ?? 0) + 1;
    store.seq = seq;
    const payload = { ...JSON.parse(text), seq };
    if (store.events?.length) payload.events = store.events;
    store.pending = { payload, since: performance.now(), tries: 0 };
    apiRef.current.setStateValue?.('value', payload);
  }, [store]); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => {
    if (commitSeq === 0) return;
    if (busyRef.current()) return; // flushed on drag / box-select end
    send(false);
  }, [commitSeq, send]); // eslint-disable-line react-hooks/exhaustive-deps
  // a one-shot action (sync.js queueEvent): sent with the graph now, and with every payload until acknowledged
  const sendEvent = useCallback((event) => {
    const q = queueEvent(store.events, event, store.eventId);
    store.events = q.events;
    store.eventId = q.id;
    send(true);
  }, [store, send]);

  // ---- a payload whose rerun Streamlit dropped is sent again once the page is idle (sync.js) ----
  useEffect(() => {
    const p = store.pending;
    if (p && data.ack != null && Number(data.ack) >= p.payload.seq) {
      store.events = unackedEvents(store.events, p.payload);
      store.pending = null;
    }
  }, [data.ack]); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => {
    const timer = setInterval(() => {
      const p = store.pending;
      const now = performance.now();
      if (!resendDue(p, ackRef.current, scriptIdle(typeof document === 'undefined' ? null : document), now)) return;
      p.tries += 1;
      p.since = now;
      performance.mark?.('layerlab:canvas:resend');
      apiRef.current.setStateValue?.('value', { ...p.payload, retry: p.tries }); // a changed value: Streamlit reruns
    }, 500);
    return () => clearInterval(timer);
  }, [store]);

  useEffect(() => {
    performance.mark?.('layerlab:canvas:rendered');
  }, [data]);

  // ---- Python replaces the graph only when the revision increases ----
  useEffect(() => {
    const rev = Number(data.revision) || 0;
    if (rev <= revRef.current) return;
    revRef.current = rev;
    const prev = nodesRef.current;
    const project = Number(data.project) || 0;
    const newProject = project !== projectRef.current;
    projectRef.current = store.project = project;
    const m = mergeFromPython(prev, edgesRef.current, data.graph, paletteRef.current, data.selected, newProject);
    pySelRef.current = data.selected ?? null;
    primaryRef.current = data.selected ?? null;
    // A replacement within the project is undoable in the browser (Ctrl+Z sends the previous graph with the new
    // revision); another project starts its own history, and Undo asks Python for the whole project it replaced
    // (the old graph alone, sent back, left the new project's name, data and settings around it).
    if (newProject) history.reset();
    else if (prev.length) history.push();
    setGraph(m.nodes, m.edges);
    // Python already has this graph; only positions it did not give are news.
    lastSentRef.current = JSON.stringify({ graph: toPy(m.nodes, m.edges), selected: primarySelection(m.nodes, primaryRef.current), revision: rev });
    onReplaced(m);
  }, [data.revision]); // eslint-disable-line react-hooks/exhaustive-deps

  // ---- Python may select a node (e.g. from its inspector) ----
  useEffect(() => {
    const sel = data.selected ?? null;
    const echo = takeEcho(sentSelRef.current, sel);
    sentSelRef.current = echo.sent;
    if (sel === pySelRef.current) return;
    pySelRef.current = sel;
    if (echo.echo) return; // what the browser itself sent earlier: never undo a newer selection with it
    if (sel === primarySelection(nodesRef.current, primaryRef.current)) return;
    if (sel && !nodesRef.current.some((n) => n.id === sel)) return;
    primaryRef.current = sel;
    setGraph(nodesRef.current.map((n) => (!!n.selected === (n.id === sel) ? n : { ...n, selected: n.id === sel })), edgesRef.current, true);
  }, [data.selected]); // eslint-disable-line react-hooks/exhaustive-deps
  return { sendEvent };
}
