"""The ``layerlab`` command line (also ``python -m builder``).

Exit codes: 0 success, 1 the graph has problems (one line each: ``node <id>: message``), 2 the file or the
arguments cannot be used (one line, no traceback). Every line that quotes user text goes through
:func:`builder.escape.terminal_line`: no newline, carriage return or ANSI escape from a file reaches the terminal.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from builder.cli.common import (
    check_output_path,
    cli_store,
    dispatch,
    emit_text,
    fail,
    finish_process,
    infer_format,
    load_project_arg,
    print_problems,
    say,
    say_json,
)
from builder.escape import terminal_line
from builder.graph.architectures import ARCHITECTURES
from builder.graph.architectures import build as build_architecture
from builder.graph.cost import node_costs
from builder.graph.memory import training_memory
from builder.graph.registry import all_specs
from builder.graph.report import Budget, human_bytes
from builder.graph.shapes import infer_shapes
from builder.graph.templates import TEMPLATE_NAMES, list_templates, template_text
from builder.interchange.hf_import import TOKENIZER, is_hf_folder
from builder.interchange.hf_library import LIBRARY_ENV, library_entries, library_folder, library_model
from builder.runs.store import default_workspace as workspace_path


def _budget(args: argparse.Namespace, project) -> Budget:
    """The size budget of the run the project would make (:func:`builder.runs.pipeline.run_budget`): its batch size,
    optimizer, device (the flags' first; the CPU when nothing names one) and its task's loss."""
    from builder.runs.pipeline import run_budget  # lazy: heavy (torch)
    from builder.training.config import TrainConfig  # lazy: heavy (torch)
    from builder.training.objectives import has_objective  # lazy: with the pipeline

    tr = project.training or {}
    over = {"batch_size": args.batch_size, "device": args.device or tr.get("device") or "cpu"}
    cfg = TrainConfig.resolve(tr.get("task"), None, tr, {k: v for k, v in over.items() if v})
    return run_budget(cfg, tr.get("task"), drawn_loss=has_objective(project))


def cmd_validate(args: argparse.Namespace) -> int:
    """Print every problem; exit 0 when the graph is valid."""
    project = load_project_arg(args.file, trains=False)
    budget = _budget(args, project)
    report = infer_shapes(project.graph, budget)
    from builder.training.finetune import settings_problems  # lazy: heavy (the training stage)

    problems = [*report.problems, *settings_problems(project.graph, project.training or {}, report=report)]
    if any(p.severity == "error" for p in problems):
        print_problems(problems)
        return 1
    print_problems(problems)  # warnings only
    est = training_memory(report, budget.batch_size, budget.optimizer, budget.device, loss=budget.loss)
    say(f"ok: {len(project.graph.nodes)} nodes, {report.total_params:,} parameters; training on {budget.device} "
          f"needs about {est.describe()}")
    return 0


def cmd_arch(args: argparse.Namespace) -> int:
    """List the full-size architectures, or write one as a project file."""
    if not args.name:
        for name, (title, fn) in ARCHITECTURES.items():
            say(f"{name:<10} {title:<30} {(fn.__doc__ or '').strip().splitlines()[0]}")
        return 0
    if args.name not in ARCHITECTURES:
        return fail(f"unknown architecture {args.name!r}; choose one of {', '.join(ARCHITECTURES)}")
    kwargs: dict = {}
    if args.input:
        try:
            kwargs["input_shape"] = tuple(int(v) for v in args.input.split(","))
        except ValueError:
            return fail(f"--input must be sizes separated by commas, e.g. 3,224,224; received: {args.input!r}")
        if args.name in ("lstm", "lstm_lm"):
            return fail("--input applies to image architectures; the LSTM reads token ids")
        if len(kwargs["input_shape"]) != 3 or min(kwargs["input_shape"]) < 1:
            return fail(f"--input is an image's channels, height and width (three sizes of at least 1); received: "
                        f"{args.input!r}. Fix: e.g. 3,224,224")
    if args.classes:
        kwargs["classes"] = args.classes
    try:
        project = build_architecture(args.name, **kwargs)
    except (TypeError, ValueError) as e:
        return fail(f"cannot build {args.name} with these sizes: {e}")
    return emit_text(project.to_json(), args.output)


def cmd_summary(args: argparse.Namespace) -> int:
    """Per node: type, output shape, parameters."""
    project = load_project_arg(args.file, trains=False)
    report = infer_shapes(project.graph)
    macs = {c.node: c.macs for c in node_costs(report)}  # the same analysis: the graph is analysed once
    ms: dict[str, float] = {}
    spread: dict[str, list[float]] = {}
    lat = None
    if args.latency and report.ok:
        from builder.graph.latency import node_latency  # lazy: heavy (torch)

        lat = node_latency(project.graph, batch_size=args.batch_size, device=args.device, repeats=args.repeats,
                           warmup=args.warmup, threads=args.threads)
        ms = {n: s * 1e3 for n, s in lat.per_node.items()}
        spread = {n: [v * 1e3 for v in p] for n, p in lat.spread.items()}
    if args.json:
        out = {"name": project.name, "valid": report.ok,
               "nodes": [{"id": nid, "type": report.nodes[nid].type, "status": report.nodes[nid].status,
                          "shape": report.nodes[nid].shape_str if report.nodes[nid].shape is not None else None,
                          "output_shape": list(report.nodes[nid].shape) if report.nodes[nid].shape is not None else None,
                          "params": report.nodes[nid].num_params, "macs": macs.get(nid),
                          **({"latency_ms": ms.get(nid), "latency_p10_p90_ms": spread.get(nid)} if lat else {}),
                          "inferred": report.nodes[nid].inferred}
                         for nid in report.order],
               "inputs": report.input_nodes, "outputs": report.output_nodes,
               "total_params": report.total_params, "total_macs": sum(macs.values()),
               **({"latency": {"device": lat.device, "batch_size": lat.batch_size, "repeats": lat.repeats,
                               "total_ms": lat.total_s * 1e3, "total_p10_ms": lat.total_p10_s * 1e3,
                               "total_p90_ms": lat.total_p90_s * 1e3, "threads": lat.threads,
                               "warmup": lat.warmup, "load": lat.load}} if lat else {}),
               "activation_bytes_per_sample": report.activation_bytes,
               "problems": [p.to_dict() for p in report.problems]}
        say_json(out, indent=2)
        return 0 if report.ok else 1
    rows = [{**r, "id": terminal_line(r["id"], 60), "type": terminal_line(r["type"], 40)} for r in report.summary_rows()]
    w_id = max([len("node"), *(len(r["id"]) for r in rows)])
    w_ty = max([len("type"), *(len(r["type"]) for r in rows)])
    w_sh = max([len("output shape"), *(len(r["shape"]) for r in rows)])
    extra = f"  {'ms':>9}  {'p10-p90 ms':>17}" if lat else ""
    width = w_id + w_ty + w_sh + 31 + len(extra)
    say(f"{'node':<{w_id}}  {'type':<{w_ty}}  {'output shape':<{w_sh}}  {'params':>10}  {'MACs':>13}{extra}")
    say("-" * width)
    for r, nid in zip(rows, report.order):
        m, t = macs.get(nid), ms.get(nid)
        p = spread.get(nid) if lat else None
        timed = (f"  {'' if t is None else format(t, '.3f'):>9}  {'' if p is None else f'{p[0]:.3f}-{p[1]:.3f}':>17}"
                 if lat else "")
        say(f"{r['id']:<{w_id}}  {r['type']:<{w_ty}}  {r['shape']:<{w_sh}}  {r['params']:>10,}  "
              f"{'' if m is None else format(m, ','):>13}{timed}")
    say("-" * width)
    say(f"total params: {report.total_params:,}   multiply-adds per sample: {sum(macs.values()):,}   "
          f"activations per sample: {human_bytes(report.activation_bytes)}")
    if lat:
        say(f"forward pass: {lat.total.text()} at batch {lat.batch_size} on {lat.device} (median of "
              f"{lat.repeats}; random weights; {lat.conditions.text()})")
    if report.problems:
        say()
        print_problems(report.problems)
    return 0 if report.ok else 1


def cmd_export(args: argparse.Namespace) -> int:
    """Write PyTorch source or safetensors weights."""
    if getattr(args, "run", None):
        from builder.cli.train import (
            export_run,  # lazy: runpy (python -m builder.cli.train must find its module not yet imported)
        )

        return export_run(args)
    if not args.file:
        return fail("give a project FILE or --run ID")
    fmt = infer_format(args.format, args.output)
    if args.output not in (None, "-"):
        check_output_path(args.output)  # before any work
    if getattr(args, "network", None):
        return _export_network_file(args, fmt)
    if fmt == "onnx":
        return _export_onnx_file(args)
    if getattr(args, "quantize", None):
        return fail("--quantize needs --format onnx")
    project = load_project_arg(args.file, trains=False)
    if fmt == "py":
        from builder.interchange.python_export import export_python  # lazy: heavy (torch, safetensors)

        return emit_text(export_python(project), args.output)
    if args.output in (None, "-"):
        return fail("--format safetensors needs -o OUT")
    import torch  # lazy: heavy (torch)

    from builder.graph.compile import compile_graph  # lazy: heavy (torch)
    from builder.training.weights import save_weights  # lazy: heavy (torch, safetensors)

    torch.manual_seed(args.seed)
    model = compile_graph(project.graph)  # checks the budget before allocating
    try:
        save_weights(model, args.output)
    except OSError as e:
        return fail(f"cannot write {args.output}: {e.strerror or e}")
    say(f"wrote {args.output} (freshly initialised with seed {args.seed}; use --run ID for trained "
                        "weights)")
    return 0


def _export_network_file(args: argparse.Namespace, fmt: str) -> int:
    """``export FILE --network NAME -o OUT.py|OUT.onnx [--weights W]``: one network of a project file (weights:
    the trained run's file, else freshly initialised with --seed)."""
    import torch  # lazy: heavy (torch)

    from builder.interchange.network_export import export_network  # lazy: heavy (torch, safetensors)

    if args.output in (None, "-") or fmt == "safetensors":
        return fail("--network needs -o OUT.py (also writes OUT.safetensors) or -o OUT.onnx")
    torch.manual_seed(args.seed)
    rep = export_network(load_project_arg(args.file, trains=False), args.network, getattr(args, "weights", None), args.output, fmt)
    extra = f"; onnxruntime max abs difference {rep['max_abs_diff']:.3g}" if rep["max_abs_diff"] is not None else ""
    say(f"wrote {' and '.join(rep['files'])} (network {args.network}: inputs "
                        f"{', '.join(rep['inputs'])}, outputs {', '.join(rep['outputs'])}{extra})")
    return 0


def _export_onnx_file(args: argparse.Namespace) -> int:
    """``export FILE --format onnx -o OUT.onnx [--weights W] [--quantize int8]``."""
    from builder.interchange.onnx_export import export_onnx, quantize_int8  # lazy: heavy (torch)

    if args.output in (None, "-"):
        return fail("--format onnx needs -o OUT.onnx")
    rep = export_onnx(load_project_arg(args.file, trains=False), args.output, getattr(args, "weights", None))
    say(f"wrote {args.output} ({rep.bytes:,} bytes; dynamic batch; onnx.checker ok; onnxruntime max "
                        f"abs difference {rep.max_abs_diff:.3g} at batch {rep.verified_batch})")
    if getattr(args, "quantize", None) == "int8":
        out = Path(args.output).with_suffix(".int8.onnx")
        q = quantize_int8(args.output, out)
        say(f"wrote {out} (int8: {q['bytes_before']:,} -> {q['bytes_after']:,} bytes, ratio "
                            f"{q['ratio']:.2f}; use --run ID to measure the test metric)")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """``layerlab import SOURCE -o OUT.json``: an ONNX / .pt2 / file.py:Class model as a project + weights."""
    from builder.interchange.importer import import_model, register_import, save_import  # lazy: heavy (torch)

    if args.output in (None, "-"):
        return fail("give -o OUT.json (the weights go to OUT.safetensors)")
    check_output_path(args.output)
    if args.source.startswith("library:"):  # a model of the configured model library, by name

        args.source = str(library_model(workspace_path(args.workspace), args.source[len("library:"):]))
    from builder.interchange.hf_import import import_hf_folder, is_hf_folder  # lazy: heavy (torch)

    if is_hf_folder(args.source):  # a Hugging Face model folder (config.json + model.safetensors)
        result = import_hf_folder(args.source, name=args.name, seq_len=args.seq_len)
    else:
        result = import_model(args.source, name=args.name)
    jpath, wpath = save_import(result, args.output)
    rep = result.report
    say(f"wrote {jpath} and {wpath}: {rep['nodes']} nodes, {rep['total_params']:,} parameters; "
                        f"outputs match {rep.get('verified_against', '-')} to "
                        f"{rep.get('max_abs_diff', float('nan')):.3g}")
    for note in rep.get("notes", []):
        say(f"note: {note}")
    if _copy_tokenizer(args.source, Path(jpath).with_name(Path(jpath).stem + ".tokenizer.json")):
        say(f"wrote {Path(jpath).stem}.tokenizer.json (the model folder's tokenizer)")
    if args.register:
        store = cli_store(args.workspace)
        tok = Path(args.source) / TOKENIZER
        rid = register_import(store, result, tokenizer=tok if is_hf_folder(args.source) and tok.is_file() else None)
        say(f"run id {rid} (train from these weights: layerlab train {jpath} --dataset NAME "
                            f"--init-from {rid})")
    return 0


def _copy_tokenizer(source: str, target: Path) -> bool:
    """Copy a Hugging Face model folder's ``tokenizer.json`` next to what the import wrote."""


    if not (is_hf_folder(source) and (Path(source) / TOKENIZER).is_file()):
        return False
    shutil.copyfile(Path(source) / TOKENIZER, target)
    return True


def cmd_library(args: argparse.Namespace) -> int:
    """``layerlab library``: the model library's models with parameters, multiply-adds and training memory."""

    ws = workspace_path(args.workspace)
    if library_folder(ws) is None:
        return fail(f"no model library is configured; set {LIBRARY_ENV} or the server config's model_library")
    for e in library_entries(ws, device=args.device, batch_size=args.batch_size):
        if e["problem"]:
            say(f"{e['name']:<24} {e['problem']}")
        else:
            say(f"{e['name']:<24} {e['architecture']:<10} {e['params']:>14,} params "
                                f"{e['macs']:>16,} MACs  training {e['memory_text']} at batch {args.batch_size} "
                                f"on {args.device}{'' if e['fits'] else ' (does not fit)'}")
    return 0


def cmd_templates(args: argparse.Namespace) -> int:
    """List templates or write one."""
    if not args.name:
        for t in list_templates():
            say(f"{t['name']:<12} {t['title']}  [{t['dataset'] or '-'}]  {t['description']}")
        return 0
    if args.name not in TEMPLATE_NAMES:
        return fail(f"unknown template {args.name!r}; choose one of {', '.join(TEMPLATE_NAMES)}")
    return emit_text(template_text(args.name), args.output)


def cmd_datasets(args: argparse.Namespace) -> int:
    """List the built-in datasets with their task, modality, options, source and licence."""
    from builder.data import list_datasets  # lazy: heavy (numpy)

    for d in list_datasets():
        opts = ", ".join(f"{k}={v!r}" for k, v in (d.get("options") or {}).items())
        say(f"{d['name']:<14} {d['task']:<14} {d['modality']:<9} {d['description']}" + (f"  [{opts}]" if opts else ""))
        say(f"{'':<14} source: {d['origin']}; licence: {d['licence']}")
    return 0


def cmd_layers(args: argparse.Namespace) -> int:
    """List the layer palette."""
    for spec in all_specs():
        params = ", ".join(f"{p.name}={p.default!r}" for p in spec.params)
        say(f"{spec.category:<14} {spec.type:<24} {params}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="layerlab", description="LayerLab: build, check, train and export "
                                     "neural networks described as project files.")
    parser.add_argument("--version", action="version", version="layerlab 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", help="check a project file; exit 1 with one line per problem")
    p.add_argument("file")
    p.add_argument("--batch-size", type=int, default=0, help="batch size of the training memory check "
                   "(default: the project's, else 64)")
    p.add_argument("--device", default="", help="device the run will use: cpu, cuda, cuda:1 (default: the "
                   "project's, else cpu); its free memory is the budget")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("arch", help="list full-size architectures (ResNet-18, VGG-11, ViT-tiny, LSTM) or write one")
    p.add_argument("name", nargs="?")
    p.add_argument("--input", help="image size C,H,W (default 3,224,224)")
    p.add_argument("--classes", type=int, default=0, help="outputs of the classifier head (default 1000)")
    p.add_argument("-o", "--output")
    p.set_defaults(func=cmd_arch)

    p = sub.add_parser("summary", help="per node: type, output shape, parameters, multiply-adds")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--latency", action="store_true",
                   help="also measure each node's forward time (random weights; median of --repeats passes)")
    p.add_argument("--device", default="cpu", help="device for --latency (cpu, cuda, cuda:1, mps)")
    p.add_argument("--batch-size", type=int, default=32, help="batch for --latency")
    p.add_argument("--repeats", type=int, default=20, help="timed passes for --latency")
    p.add_argument("--warmup", type=int, default=3, help="untimed passes before --latency's timed ones")
    p.add_argument("--threads", type=int, default=1, help="torch threads while timing --latency (fixed: the "
                   "figure depends on it)")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("export", help="write PyTorch source (.py) or weights (.safetensors)")
    p.add_argument("file", nargs="?")
    p.add_argument("--format", choices=("py", "safetensors", "onnx"), default=None,
                   help="default: from the -o suffix (.py, .safetensors, .onnx), else py")
    p.add_argument("--quantize", choices=("int8",), help="with --format onnx: also write OUT.int8.onnx "
                   "(dynamic int8; with --run the test metric before/after goes into the model card)")
    p.add_argument("--weights", help="with FILE --format onnx or --network: a .safetensors file to export with")
    p.add_argument("-o", "--output", help="output path (default: stdout for py)")
    p.add_argument("--seed", type=int, default=0, help="initialisation seed for untrained weights")
    p.add_argument("--run", help="export a trained run's weights/code instead of a project file")
    p.add_argument("--network", help="export one network of a project with a drawn objective (e.g. a GAN's "
                   "generator, its input the noise) as py (+ .safetensors) or onnx")
    p.add_argument("--temperature", action="store_true", help="with --run and --format py/onnx: divide the logits "
                   "by the temperature `layerlab calibrate` stored with the run")
    p.add_argument("--workspace", help="workspace folder holding the runs")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="import an ONNX, torch.export (.pt2), Hugging Face model folder or "
                       "file.py:Class model as a project")
    p.add_argument("source", help="model.onnx, model.pt2, a Hugging Face model folder (config.json + "
                   "model.safetensors), library:NAME (a model of the model library) or file.py:ClassName[(args)] "
                   "(runs that file)")
    p.add_argument("--seq-len", type=int, help="tokens per sample for a text model folder (default: up to 64)")
    p.add_argument("-o", "--output", help="OUT.json (weights to OUT.safetensors)")
    p.add_argument("--name", help="project name")
    p.add_argument("--register", action="store_true", help="also record the weights as a run in the workspace "
                   "so `train --init-from RUN` starts from them")
    p.add_argument("--workspace", help="workspace folder for --register")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("library", help="list the model library's models with their size and training memory")
    p.add_argument("--device", default="cpu", help="cpu or cuda: the device the memory estimate is for")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workspace", help="workspace folder (its server config may name the library)")
    p.set_defaults(func=cmd_library)

    p = sub.add_parser("templates", help="list templates, or write one to a file")
    p.add_argument("name", nargs="?")
    p.add_argument("-o", "--output")
    p.set_defaults(func=cmd_templates)

    p = sub.add_parser("datasets", help="list the built-in datasets (for train --dataset)")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("layers", help="list the layer palette with default parameters")
    p.set_defaults(func=cmd_layers)

    for command_module in _command_modules():
        command_module.register(sub)
    return parser


def _command_modules() -> tuple:
    """The modules adding sub-commands (``register(subparsers)``), in order: ``search`` extends ``train`` and
    ``runs``; ``checks`` adds ``calibrate``, ``drift``, ``prune`` and ``robustness``; ``predict`` a run's predictions. They import :mod:`builder.cli.common`, never this module.
    Imported here, not at the top, so that ``python -m builder.cli.train`` finds its module not yet imported."""
    import builder.cli.checks  # lazy: runpy (python -m builder.cli.train must find its module not yet imported)
    import builder.cli.db  # lazy: runpy (python -m builder.cli.train must find its module not yet imported)
    import builder.cli.predict  # lazy: runpy (python -m builder.cli.train must find its module not yet imported)
    import builder.cli.search  # lazy: runpy (python -m builder.cli.train must find its module not yet imported)
    import builder.cli.train  # lazy: runpy (python -m builder.cli.train must find its module not yet imported)

    return (builder.cli.train, builder.cli.search, builder.cli.checks, builder.cli.predict, builder.cli.db)


def main(argv: list[str] | None = None) -> int:
    """The CLI: parse ``argv`` (default: the process's), run the command, return its exit code."""
    return dispatch(build_parser(), argv)


def run() -> None:
    """Entry point of the ``layerlab`` console script and ``python -m builder``: :func:`main`, then the process
    ends with its code (:func:`builder.cli.common.finish_process`)."""
    finish_process(main())
