"""Look of the app: the stylesheet, the logo, page headers, escaping user text for Markdown, errors."""

from __future__ import annotations

import html
import re

import streamlit as st

import builder
from builder.escape import hide_paths, md_lines

CSS = """
<style>
.block-container {padding: 2.6rem 1.5rem 1.5rem 1.5rem !important; max-width: 100%;}  /* the title clears the header bar */
section[data-testid="stSidebar"][data-collapsed="false"] {width: 248px !important; min-width: 248px !important;}
/* narrow windows: the sidebar floats over the page instead of squeezing it (collapse it with its « button;
   Streamlit remembers that per browser) */
@media (max-width: 1100px) {
  section[data-testid="stSidebar"][data-collapsed="false"] {position: fixed !important; z-index: 1000; top: 0;
    height: 100vh !important; box-shadow: 8px 0 30px rgba(15, 23, 42, 0.18);}
}
[data-testid="stSidebar"] .block-container {padding-top: 1rem;}
h1 {font-size: 1.75rem !important; font-weight: 700 !important; letter-spacing: -0.01em; margin-bottom: 0 !important;}
h2 {font-size: 1.25rem !important; font-weight: 650 !important;}
h3 {font-size: 1.05rem !important; font-weight: 650 !important;}
[data-testid="stMetricValue"] {font-size: 1.35rem;}
/* a metric's value wraps rather than ending in an ellipsis: "Small CNN for 8×8 d…" hid the project's name at 900 px */
[data-testid="stMetricValue"] .stMarkdownEllipsis, [data-testid="stMetricValue"] p {
  white-space: normal !important; text-overflow: clip !important; overflow-wrap: anywhere; line-height: 1.25;}
[data-testid="stMetricLabel"] p {font-size: 0.8rem; color: #64748b;}
.ll-sub {color: #64748b; font-size: 0.92rem; margin: 0.1rem 0 0.9rem 0;}
.ll-brand {font-weight: 750; font-size: 1.2rem; letter-spacing: -0.01em;}
.ll-brand span {color: #4f46e5;}
div[data-testid="stExpander"] details summary p {font-weight: 600;}
[data-testid="stAppDeployButton"] {display: none;}
/* a segmented control narrower than its buttons wraps them instead of scrolling them out of sight (Explain's
   View read "tmap | Overlay | Both" at 900 px) */
[data-testid="stButtonGroup"] > div:has(> button) {flex-wrap: wrap; row-gap: 4px; overflow-x: visible;}
/* toasts rise from the bottom right corner, above the canvas's summary bar: from the top right they covered the Build
   guide's buttons (How it works, close) for their seconds on screen */
[data-testid="stToastContainer"] {top: auto !important; bottom: 3.25rem !important;}
/* a replacement's Replace/Cancel question, scrolled into view when asked, stops below the app's header bar */
.st-key-ll_confirm_box {scroll-margin-top: 72px;}
/* ... and starts with its question: the element of that scroll script took an empty row above it */
.st-key-ll_confirm_box [data-testid="stElementContainer"]:has(> [data-testid="stHtml"]) {display: none;}
/* the identity cookie's zero-height script (app_pages/state.py) takes no row of the page: in the flow it cost a
   first visit 16 px above every page's title */
.st-key-ll_identity {position: absolute !important; width: 0; height: 0; overflow: hidden;}
/* Build page: the first-visit guide is one compact row (the canvas below it takes the page) */
.st-key-ll_first_visit {padding: 0.35rem 0.75rem !important; gap: 0.3rem !important;}
.st-key-ll_first_visit p {margin-bottom: 0 !important; font-size: 0.92rem;}
/* its text is always two lines high (clamped to two), so the canvas below keeps its place when the text changes */
.st-key-ll_first_visit [data-testid="stColumn"]:first-child [data-testid="stMarkdownContainer"] p {
  min-height: 2lh; display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 2; overflow: hidden;}
/* Build page: the inspector's layer table, compact and one line per layer */
.st-key-ll_layer_table table {font-size: 0.82rem; width: 100%;}
.st-key-ll_layer_table th, .st-key-ll_layer_table td {padding: 0.2rem 0.45rem; white-space: nowrap;}
/* Build page: the inspector's Close shows only where the inspector floats over the canvas (below) */
.st-key-ll_inspector_close {display: none !important;}
/* Build page: the inspector floats over the canvas (instead of squeezing it) on narrow windows while a layer
   is selected, and is hidden otherwise (app_pages/build.py picks the container key) */
@media (max-width: 1100px) {
  [data-testid="stHorizontalBlock"]:has(.st-key-ll_inspector, .st-key-ll_inspector_idle) > [data-testid="stColumn"]:first-child {
    flex: 1 1 100% !important; width: 100% !important; max-width: 100% !important;}
  [data-testid="stColumn"]:has(.st-key-ll_inspector_idle) {display: none !important;}
  /* the Build toolbar's buttons keep their words (bare icons were a puzzle) and drop their icons instead */
  .st-key-ll_build_tools button span:has(> [data-testid="stIconMaterial"]) {display: none;}
  .st-key-ll_build_tools button {padding-left: 0.4rem !important; padding-right: 0.4rem !important; gap: 0.2rem;}
  .st-key-ll_build_tools button p {font-size: 0.85rem; white-space: nowrap; overflow: hidden; text-overflow: ellipsis;}
  .st-key-ll_guide_hide button [data-testid="stMarkdownContainer"] {display: none;}  /* the guide's Hide: its × */
  /* Runs: a run's actions keep their words too ("Open on canvas" showed as "Open on c…" at 900 px) */
  .st-key-ll_run_actions button span:has(> [data-testid="stIconMaterial"]) {display: none;}
  .st-key-ll_run_actions button {padding-left: 0.4rem !important; padding-right: 0.4rem !important;}
  .st-key-ll_build_tools button {justify-content: center;}
  /* anchored bottom-right, between the canvas toolbar and the canvas's status bar: at the top it sat on the
     toolbar's Cost, Find and ? controls; at bottom 12px it hid the status bar's "No problems" (the canvas ends
     ~13 px above the window's bottom, its status bar is 36 px tall) */
  [data-testid="stColumn"]:has(.st-key-ll_inspector) {
    position: fixed !important; right: 10px; bottom: 56px; width: min(340px, 86vw) !important; flex: none !important;
    z-index: 999; background: #fff; border: 1px solid #e2e8f0; border-radius: 10px; padding: 8px 12px;
    box-shadow: 0 12px 36px rgba(15, 23, 42, 0.22);}
  /* its Close (app_pages/build.py), top-right over the panel's first row (the Layer / Try it switch) */
  [data-testid="stColumn"]:has(.st-key-ll_inspector) .st-key-ll_inspector_close {
    display: block !important; position: absolute !important; top: 8px; right: 12px; width: auto !important; z-index: 2;}
  [data-testid="stLayoutWrapper"]:has(> .st-key-ll_inspector) {flex: 0 0 min(556px, calc(100vh - 424px)) !important;
    height: min(556px, calc(100vh - 424px)) !important;}
}
button[kind="primary"], button[kind="primaryFormSubmit"] {background: #4f46e5 !important; border-color: #4f46e5 !important;}
button[kind="primary"]:hover, button[kind="primaryFormSubmit"]:hover {background: #4338ca !important; border-color: #4338ca !important;}
[data-testid="stProgress"] div[role="progressbar"] > div > div > div {background-color: #4f46e5 !important;}
span[data-baseweb="tag"] {background-color: #4f46e5 !important;}
</style>
"""


LOGO = ("<svg xmlns='http://www.w3.org/2000/svg' width='150' height='32' viewBox='0 0 150 32'>"
        "<rect x='1' y='5' width='9' height='9' rx='2' fill='#4f46e5'/><rect x='1' y='18' width='9' height='9' rx='2'"
        " fill='#0ea5e9'/><rect x='16' y='11' width='9' height='9' rx='2' fill='#10b981'/><path d='M10 9.5 L16 15.5 M10"
        " 22.5 L16 15.5' stroke='#94a3b8' stroke-width='1.5'/><text x='32' y='22' font-family='Source Sans Pro, Arial,"
        " sans-serif' font-size='19' font-weight='700' fill='#0f172a'>Layer<tspan fill='#4f46e5'>Lab</tspan></text>"
        "</svg>")


def page_header(title: str, subtitle: str) -> None:
    """The page's title and, unless empty, its subtitle."""
    st.title(title)
    if subtitle:
        st.markdown(f"<p class='ll-sub'>{_esc(subtitle)}</p>", unsafe_allow_html=True)


def _esc(s: str) -> str:
    return html.escape(str(s))


def md(text) -> str:
    """User-controlled text (names, ids, messages that quote them) for Streamlit Markdown, shown literally: no
    links, images, emphasis, HTML or block markup (:func:`builder.escape.md_lines`, the one Markdown escaper)."""
    return md_lines(text)


_NUMBERS = re.compile(r"[-+0-9.,eE %\[\]]*")  # numbers and lists of them: no link, emphasis or block can form


def md_value(text) -> str:
    """A metric's value (Streamlit renders it as Markdown): numbers as they are, anything else through :func:`md`.

    >>> md_value("0.1191"), md_value("[0.5, -1e-3]"), md_value("*cat*")
    ('0.1191', '[0.5, -1e-3]', '\\\\*cat\\\\*')
    """
    s = str(text)
    return s if _NUMBERS.fullmatch(s) else md(s)


def style() -> None:
    st.html(CSS)  # style tags only: Streamlit keeps them out of the page's rows (a markdown element took one)


# Below NARROW_PX the sidebar floats over the page (CSS above) and covered the left third of the canvas at
# 900x900: there it starts collapsed, as a phone-width site's menu does, and opens from its » button. A person's own
# choice (Streamlit stores it per browser under ``stSidebarCollapsed-*`` when its button is pressed) wins; the
# collapse made here is not stored, so a wider window gets the expanded sidebar again. The page's root element
# gets ``data-ll-sidebar="settled"`` once the rule has been applied (browser tests wait for it).
NARROW_PX = 1100
SIDEBAR_JS = """<script>
(() => {
  const root = document.documentElement;
  if (root.dataset.llSidebarRule) return;  // once per page load (the element may be mounted again)
  root.dataset.llSidebarRule = "on";
  const stored = () => { try { return Object.keys(localStorage).filter((k) => k.startsWith("stSidebarCollapsed-")); }
                         catch (e) { return []; } };
  const settle = () => { root.dataset.llSidebar = "settled"; };
  const apply = (tries) => {
    if (window.innerWidth > NARROW_PX || stored().length) return settle();
    const bar = document.querySelector('[data-testid="stSidebar"]');
    const btn = document.querySelector('[data-testid="stSidebarCollapseButton"] button');
    if (bar && bar.dataset.collapsed === "true") return settle();
    if (bar && btn) {
      btn.click();  // Streamlit stores this as the person's choice: forget it (a default, not a choice)
      try { stored().forEach((k) => localStorage.removeItem(k)); } catch (e) { /* storage blocked */ }
      return settle();
    }
    if (tries > 0) requestAnimationFrame(() => apply(tries - 1)); else settle();
  };
  apply(600);
  // A page chosen from the floating sidebar closes it, as a narrow site's menu does: at 900x900 it stayed open over
  // the new page (Train's Start button under it) until the person found its close button.
  document.addEventListener("click", (ev) => {
    if (window.innerWidth > NARROW_PX || !ev.target.closest || !ev.target.closest('[data-testid="stSidebarNav"] a')) return;
    setTimeout(() => {
      const bar = document.querySelector('[data-testid="stSidebar"]');
      const btn = document.querySelector('[data-testid="stSidebarCollapseButton"] button');
      if (!bar || bar.dataset.collapsed === "true" || !btn) return;
      const before = stored();
      btn.click();  // not the person's choice either: only the keys stored before stay
      try { stored().filter((k) => !before.includes(k)).forEach((k) => localStorage.removeItem(k)); } catch (e) { /* blocked */ }
    }, 0);
  }, true);
  let timer;  // Streamlit expands the sidebar again on a resize: collapse it again at a narrow width
  window.addEventListener("resize", () => { clearTimeout(timer); timer = setTimeout(() => apply(60), 150); });
})();
</script>""".replace("NARROW_PX", str(NARROW_PX))


def sidebar_rule() -> None:
    """The sidebar starts collapsed on narrow windows (see :data:`SIDEBAR_JS`); call inside ``st.sidebar``."""
    st.html(SIDEBAR_JS, unsafe_allow_javascript=True)


def error_md(e: BaseException | str) -> str:
    """An error's text for any Markdown element of a page: no server folder (:func:`builder.escape.hide_paths`),
    nothing that renders as markup (:func:`md`). :func:`show_error` and every warning that quotes an error use it."""
    return md(hide_paths(e))


def show_error(e: BaseException | str) -> None:
    """A LayerLabError (or an error's text) as a readable message: never a traceback, never a server folder."""
    if isinstance(e, builder.GraphError) and e.problems:
        lines = "\n".join(f"- {error_md(p)}" for p in e.problems[:8])
        st.error(f"The graph has {len(e.problems)} problem(s):\n\n{lines}")
    else:
        st.error(error_md(e))  # no folder of the server in what a page shows



__all__ = ["CSS", "LOGO", "page_header", "md", "md_value", "error_md", "style", "show_error"]
