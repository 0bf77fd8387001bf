"""``layerlab predict``: a finished run's prediction for new inputs, from the command line.

The model runs where Try it runs it: in the sandboxed probe child (:class:`builder.jobs.probe.ModelProbe`), asked
through a :class:`~builder.jobs.probe.ProbeSession` of a run the CLI's local user may read (the run id is a claim
checked by the store's access policy; a unique prefix of one's own run works). Inputs are encoded as Try it
encodes them (:mod:`builder.interpret.tryit`), by what the run reads:

* a table: ``--input-path rows.csv`` (a header with the feature names, in any order; one prediction per row) or
  ``--text "5.1, 3.5, 1.4, 0.2"`` (one row, the features in order);
* text: ``--text "a sentence"``, or ``--input-path`` a .txt (one text per line), a CSV (the run's text column)
  or a .zip of .txt files; a language model continues each text as a prompt;
* a series: the last ``lookback`` steps, one per line (columns separated by commas), in ``--text`` or a file;
* images: ``--input-path`` an image file.

Example::

    layerlab predict 20261124-030812 --text "the plot was dull but the acting superb"
    layerlab predict 20261124-030812 --input-path new_rows.csv --json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from builder.cli.common import cli_store, say, say_json, typed_run
from builder.errors import ExplainError

MAX_INPUTS = 1000  # predictions one command makes (rows, texts)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``predict`` to a CLI's subparsers."""
    p = subparsers.add_parser("predict", help="a run's prediction for new inputs (table rows, texts, a prompt, a "
                              "series, an image), made in the sandboxed probe as Try it makes it")
    p.add_argument("run_id", metavar="RUN")
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--text", help="the input typed: a sentence or prompt, a row of numbers separated by commas, "
                       "or a series (one step per line)")
    given.add_argument("--input-path", dest="input_path", help="the inputs in a file: a CSV of rows (a header with "
                       "the feature names) or of texts, a .txt of texts (one per line) or a series, an image")
    p.add_argument("--method", help="also attribute each prediction with this explanation method "
                   "(e.g. integrated_gradients); the top features or tokens are printed")
    p.add_argument("--steps", type=int, default=40, help="tokens a language model writes (default 40)")
    p.add_argument("--workspace", help="workspace folder holding the runs")
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")
    p.set_defaults(func=cmd_predict)


def _table_rows(xs: Any, form: Any, path: str | None, text: str | None) -> list[tuple[str, list[float]]]:
    """Rows of feature values in the form's order: a CSV with the feature names as header, or one typed row."""
    if text is not None:
        return [(text[:60], [v.strip() for v in text.replace(";", ",").split(",") if v.strip()])]
    import pandas as pd  # lazy: heavy (pandas)

    from builder.data.tabular import preview_csv  # lazy: heavy (pandas)

    df = preview_csv(path, MAX_INPUTS + 1, name=Path(path).name)  # the CSV limits checked before parsing
    if len(df) > MAX_INPUTS:
        raise ExplainError(f"predict makes at most {MAX_INPUTS:,} predictions; received more rows. Fix: split the "
                           "file")
    df.columns = [str(c).strip() for c in df.columns]
    missing = [n for n in form.names if n not in df.columns]
    if missing:
        raise ExplainError(f"the rows need the run's feature columns; received none named "
                           f"{', '.join(map(repr, missing[:8]))}. Fix: a header with {', '.join(form.names[:12])}")
    values = df[form.names].apply(pd.to_numeric, errors="coerce")
    return [(f"row {i + 1}", values.iloc[i].tolist()) for i in range(len(df))]


def _texts(xs: Any, path: str | None, text: str | None) -> list[str]:
    if text is not None:
        return [text]
    from builder.data.text import read_new_texts  # lazy: heavy (tokenizers)

    texts = read_new_texts(path, xs.info.options.get("text_column"))
    if len(texts) > MAX_INPUTS:
        raise ExplainError(f"predict makes at most {MAX_INPUTS:,} predictions; received {len(texts):,} texts. Fix: "
                           "split the file")
    return texts


def _read(path: str, what: str, most: int | None = None) -> bytes:
    from builder.data import limits  # lazy: heavy (numpy)
    from builder.data.files import read_limited  # lazy: heavy (numpy)

    return read_limited(path, most or limits.MAX_TEXT_BYTES, what)


def predictions(xs: Any, *, text: str | None = None, path: str | None = None, method: str | None = None,
                steps: int = 40) -> list[dict]:
    """One answer per input for the session ``xs`` of a run (a :class:`~builder.jobs.probe.ProbeSession`):
    ``input`` and ``prediction`` (with ``confidence`` and ``runners_up`` for a classifier, ``attribution`` with a
    method), or ``continuation`` for a language model.

    Raises:
        ExplainError, DatasetError: an input that does not fit the run.
    """
    from builder.interpret import tryit  # lazy: heavy (torch, captum)

    form = tryit.try_form(xs)
    if form.kind in ("tokens", "prompt"):
        items = [(t, tryit.encode_tokens(xs, t)) for t in _texts(xs, path, text)]
    elif form.kind == "series":
        series = text if text is not None else _read(path, "series").decode("utf-8", errors="replace")
        items = [("series", tryit.encode_series(xs, series))]
    elif form.kind == "image":
        if path is None:
            raise ExplainError("this run reads images; received: typed text. Fix: --input-path an image file")
        items = [(Path(path).name, tryit.encode_image(xs, _read(path, "image", tryit.MAX_TRY_IMAGE_BYTES),
                                                      name=Path(path).name))]
    else:
        items = [(label, tryit.encode_row(xs, row)) for label, row in _table_rows(xs, form, path, text)]
    out = []
    for label, x in items:
        if form.kind == "prompt":
            got = tryit.continue_text(xs, x, steps=steps, seed=0)
            out.append({"input": label, "continuation": got["continuation"]})
            continue
        res = tryit.try_input(xs, x, method)
        answer: dict[str, Any] = {"input": label, "prediction": res.predicted}
        if res.confidence == res.confidence:  # a classifier (NaN otherwise)
            answer.update(confidence=res.confidence, runners_up=[[n, p] for n, p in res.runners_up])
        if res.explanation is not None:
            names = (tryit.token_labels(xs, x) if form.kind == "tokens" else form.names) or []
            values = res.explanation.attributions.reshape(-1).tolist()
            ranked = sorted(zip(names, values, strict=False), key=lambda nv: -abs(nv[1]))[:5]
            answer["attribution"] = [[n, float(v)] for n, v in ranked]
        if res.error:
            answer["attribution_error"] = res.error
        out.append(answer)
    return out


def cmd_predict(args: argparse.Namespace) -> int:
    """``layerlab predict RUN (--text TEXT | --input-path FILE)``."""
    from builder.jobs.probe import ModelProbe, ProbeSession  # lazy: heavy (torch)

    store = cli_store(args.workspace)
    run_id = typed_run(store, args.run_id)  # "no run X of yours" for another person's or an unknown run
    probe = ModelProbe()
    try:
        xs = ProbeSession(probe, store, run_id, "test")
        answers = predictions(xs, text=args.text, path=args.input_path, method=args.method, steps=args.steps)
    finally:
        probe.close()
    if args.json:
        say_json({"run_id": run_id, "predictions": answers}, default=str)
        return 0
    for a in answers:
        if "continuation" in a:
            say(f"{a['input']} → {a['continuation']}", max_len=400)
            continue
        conf = f" ({a['confidence']:.1%})" if "confidence" in a else ""
        say(f"{a['input'][:60]}: {a['prediction']}{conf}", max_len=300)
        if a.get("attribution"):
            say("  most attributed: " + ", ".join(f"{n} {v:+.3g}" for n, v in a["attribution"]), max_len=300)
    return 0
