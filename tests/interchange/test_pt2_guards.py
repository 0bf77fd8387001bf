"""A dynamic-batch .pt2 of a model with several inputs (issue 34): torch writes the inputs' equal batch as guard
code. LayerLab reads those lines (never runs them) and imports the file when they only say what the canvas already
means (every Input's leading dimension is the one batch B, maybe bounded); any other guard is refused, named.
The import's own check runs such a program at a batch inside its bounds, with its inputs in its own nesting."""

from __future__ import annotations

import logging
import re
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.export import Dim

from builder.graph.compile import compile_graph
from builder.interchange import ModelImportError
from builder.interchange.importer import import_model
from builder.interchange.pt2_guards import check_guards
from builder.interchange.pt2_read import load_program


class TwoBranches(nn.Module):
    """A Linear on ``x`` and a Conv1d on ``y`` (a third input ``z``: added to ``y``), concatenated into a head."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 4), nn.Sequential(nn.Conv1d(2, 2, 3, padding=1), nn.Flatten())
        self.head = nn.Linear(4 + 2 * 5, 2)

    def forward(self, x, y, z=None):
        y = y if z is None else y + z
        return self.head(torch.relu(torch.cat([self.a(x), self.b(y)], 1)))


class AddPair(nn.Module):
    def forward(self, x, y):
        return x + y


class AddTransposed(nn.Module):
    def forward(self, x, y):
        return x + y.transpose(0, 1)


def _save(model: nn.Module, args: tuple, dyn: tuple, folder) -> tuple[str, torch.export.ExportedProgram]:
    path = folder / "m.pt2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            ep = torch.export.export(model, args, dynamic_shapes=dyn)
            torch.export.save(ep, str(path))
        finally:
            logging.disable(logging.NOTSET)
    return str(path), ep


def _inputs(n: int, batch: int) -> tuple[torch.Tensor, ...]:
    return (torch.randn(batch, 3), *(torch.randn(batch, 2, 5) for _ in range(n - 1)))


@pytest.mark.parametrize(("n", "batch"), [(2, Dim("batch", min=1)), (3, Dim("batch")),
                                          (2, Dim("batch", min=2, max=64))], ids=["two", "three", "bounded"])
def test_inputs_of_one_dynamic_batch_import_exactly(n, batch, tmp_path):
    """Two or three inputs sharing one batch Dim (bounded or not): imported, one Input per input, the parameters
    counted once, and the outputs equal the torch program's and the module's at a batch other than the file's."""
    torch.manual_seed(0)
    model = TwoBranches().eval()
    path, ep = _save(model, _inputs(n, 2), tuple({0: batch} for _ in range(n)), tmp_path)
    assert ep._guards_code  # torch wrote the equal batch as guard code
    res = import_model(path)
    assert res.report["max_abs_diff"] <= res.report["tolerance"]
    assert res.report["total_params"] == sum(p.numel() for p in model.parameters())
    assert [nd.type for nd in res.project.graph.nodes].count("Input") == n
    imported = compile_graph(res.project.graph)
    imported.load_state_dict(res.weights)
    xs = _inputs(n, 5)
    with torch.no_grad():
        want, program = model(*xs), ep.module()(*xs)
        got = imported.eval()(*xs)
    assert torch.allclose(want, program) and float((got - want).abs().max()) <= 1e-5


def test_the_accepted_guard_code_is_dropped_never_handed_to_torch(tmp_path):
    """What torch would exec is not in the loaded program: the reader checked the lines and removed them."""
    path, ep = _save(TwoBranches().eval(), _inputs(2, 2), ({0: Dim("b")}, {0: Dim("b")}), tmp_path)
    assert ep._guards_code and load_program(path)._guards_code == []


@pytest.mark.parametrize(("model", "args", "dyn", "named"), [
    (AddPair(), (torch.randn(2, 3), torch.randn(2, 3)), ({1: Dim("t")}, {1: Dim("t")}), "dimension 1 of `x`"),
    (AddPair(), (torch.randn(2, 3), torch.randn(2, 3)), ({0: Dim("b"), 1: Dim("t")},) * 2, "dimension 1 of `x`"),
    (AddTransposed(), (torch.randn(2, 3), torch.randn(3, 2)), ({0: Dim("b")}, {1: Dim("b")}), "dimension 1 of `y`"),
    (AddPair(), (torch.randn(3, 3),) * 2, ({0: Dim("b"), 1: Dim("b")},) * 2, "dimension 1 of `x`"),
], ids=["non_batch_shared", "batch_and_non_batch", "batch_to_non_batch", "square"])
def test_guard_code_beyond_the_batch_stays_refused_naming_it(model, args, dyn, named, tmp_path):
    """A guard relating a dimension other than the batch (to another input's, or to the batch) states something
    the canvas does not mean: refused, naming the dimension and quoting the line."""
    path, _ = _save(model, args, dyn, tmp_path)
    with pytest.raises(ModelImportError, match=rf"guard code other than .*\(it relates {named}, which is not "
                                               r"the batch\); received: L\['"):
        import_model(path)


@pytest.mark.parametrize("line", [
    "L['y'].size()[0] == L['x'].size()[0]", "L['x'].size()[0]==L['x'].size()[0]", "L['x'].size()[0] >= 2",
    "2 <= L['y'].size()[0]", "L['x'].size()[0] < 65", "L['xs'][1].size()[0] == L['x'].size()[0]"])
def test_lines_about_the_batch_only_are_accepted(line):
    check_guards([line], {"x", "y", "xs"})


@pytest.mark.parametrize(("line", "why"), [
    ("__import__('os').system('true')", "not a comparison"),
    ("L['x'].size()[0] == 2", "pins the batch of `x` with `==`"),
    ("L['x'].size()[0] != 1", "pins the batch of `x` with `!=`"),
    ("L['x'].size()[0] >= L['y'].size()[0]", "compares two batch sizes with `>=`"),
    ("L['z'].size()[0] == L['x'].size()[0]", "names `z`, which is not an input"),
    ("(L['x'].size()[0] // 2) != 1", "not a comparison"),
    ("L['x'].size()[0] == L['y'].size()[0] or True", "not a comparison"),
    ("L['x'].size()[0] == L['y'].size()[0]\nimport os", "not a comparison"),
    ("2 == 2", "compares two numbers"),
    (7, "not a short line"),
])
def test_other_lines_are_refused_saying_why(line, why):
    with pytest.raises(ModelImportError, match=rf"guard code other than .*\(it (is )?{re.escape(why)}"):
        check_guards(["L['x'].size()[0] == L['y'].size()[0]", line], {"x", "y"})


_SIZE = st.tuples(st.sampled_from(["x", "y", "w"]), st.sampled_from([0, 0, 1, 2]))
_SIDE = st.one_of(_SIZE, st.integers(0, 99))


@settings(max_examples=60, deadline=None)
@given(lhs=_SIDE, op=st.sampled_from(["==", "!=", ">=", "<=", ">", "<"]), rhs=_SIDE,
       spaces=st.sampled_from(["", " ", "  "]))
def test_a_line_is_accepted_exactly_when_it_speaks_of_the_batch_of_inputs(lhs, op, rhs, spaces):
    """Over generated comparisons: equal leading sizes of inputs, or one leading size against a number with an
    inequality, and nothing else."""
    text = [f"L['{s[0]}'].size()[{s[1]}]" if isinstance(s, tuple) else str(s) for s in (lhs, rhs)]
    sizes = [s for s in (lhs, rhs) if isinstance(s, tuple)]
    batch = all(name in ("x", "y") and dim == 0 for name, dim in sizes)
    ok = batch and (len(sizes) == 2 and op == "==" or len(sizes) == 1 and op not in ("==", "!="))
    try:
        check_guards([f"{text[0]}{spaces}{op}{spaces}{text[1]}"], {"x", "y"})
        accepted = True
    except ModelImportError:
        accepted = False
    assert accepted == ok


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=80) | st.lists(st.text(max_size=8), max_size=3).map(str))
def test_any_other_text_is_one_refusal(text):
    with pytest.raises(ModelImportError, match="guard code"):
        check_guards([text], {"x", "y"})


def test_guard_code_that_is_not_a_list_of_lines_is_refused():
    with pytest.raises(ModelImportError, match="not a list"):
        check_guards("L['x'].size()[0] == L['y'].size()[0]", {"x", "y"})


class Branchy(nn.Module):
    """A Python branch on the batch: torch records the branch taken and bounds the batch to where it holds."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x, y):
        return self.fc(x + y) if x.shape[0] > 3 else self.fc(x - y)


@pytest.mark.parametrize(("model", "args", "dyn", "bounds"), [
    (nn.Linear(3, 2), (torch.randn(5, 3),), ({0: Dim("b", min=4, max=8)},), "4 to 8"),
    (Branchy(), (torch.randn(5, 3), torch.randn(5, 3)), ({0: Dim.AUTO}, {0: Dim.AUTO}), "4 or more"),
], ids=["dim_from_4", "branch_on_batch"])
def test_a_batch_bounded_above_the_checks_size_imports_checked_inside_its_bounds(model, args, dyn, bounds,
                                                                                 tmp_path):
    """The import's check runs the program at a batch it accepts (it ran it at 3: torch's "Expected input at
    *args[0].shape[0] to be >= 4" escaped as a RuntimeError), and the report says the bounds."""
    path, ep = _save(model.eval(), args, dyn, tmp_path)
    res = import_model(path)
    assert res.report["max_abs_diff"] <= res.report["tolerance"]
    assert any(f"exported for batches of {bounds} rows" in n for n in res.report["notes"])


def test_a_batch_the_check_cannot_reach_is_refused(tmp_path):
    path, _ = _save(nn.Linear(3, 2).eval(), (torch.randn(100, 3),), ({0: Dim("b", min=65)},), tmp_path)
    with pytest.raises(ModelImportError, match="only accepts batches of 65 or more rows.*Fix: export with a batch "
                                               "Dim whose min is at most 64"):
        import_model(path)


class Keywords(nn.Module):
    def forward(self, pair, *, scale):
        return (pair[0] + pair[1]) * scale


def test_inputs_nested_or_by_keyword_are_checked_against_the_program(tmp_path):
    """The check calls the program with the imported graph's flat inputs put back into its signature (a tuple
    and a keyword argument here; it raised torch's ValueError about the tree spec)."""
    b = Dim("b")
    x = (torch.randn(2, 3), torch.randn(2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(Keywords(), (x,), {"scale": torch.randn(2, 3)},
                                 dynamic_shapes={"pair": ({0: b}, {0: b}), "scale": {0: b}})
    torch.export.save(ep, str(tmp_path / "m.pt2"))
    res = import_model(str(tmp_path / "m.pt2"))
    assert res.report["max_abs_diff"] <= res.report["tolerance"]
    assert [nd.type for nd in res.project.graph.nodes].count("Input") == 3
