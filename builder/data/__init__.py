"""The data stage: dataset sources, loaders, splits, fitting data to a graph, and reading predictions.

In data-flow order: :mod:`.sources` (one :class:`DatasetSource` description and :func:`load_dataset`),
:mod:`.builtin` (the registry of offline built-in sets), :mod:`.tabular` (CSV), :mod:`.images` (image
folders and zips), :mod:`.text` (texts and corpora, tokenizers learned on the training split), :mod:`.series`
(time series as windows split by time), :mod:`.limits` (upload limits), :mod:`.splits` (``Dataset``/``Split``/``DatasetInfo`` and
seeded stratified splits), :mod:`.snapshot` (one-file dataset snapshots), :mod:`.compat` (does a graph's Input
and output fit a dataset), :mod:`.fit` (the dataset shaped for the graph's Input) and :mod:`.predictions` (a
model's outputs read for the task).

``Prediction`` and ``predict`` (torch) are imported on first use, so listing datasets and checking a graph
against one (the Data and Train pages) import no torch.
"""

from builder.data import series_builtin, text_builtin  # noqa: F401,I001  (register sunspots, co2, nile; text_sentiment, text_corpus)
from builder.data.builtin import DatasetSpec, list_datasets, register_dataset
from builder.data.compat import adapt_graph, check_compat
from builder.data.fit import fit_dataset
from builder.data.images import load_image_folder
from builder.data.snapshot import describe, load_saved_dataset, save_dataset
from builder.data.sources import SOURCE_KINDS, DatasetSource, load_dataset, source_kinds
from builder.data.splits import MODALITIES, TASKS, Dataset, DatasetInfo, Split, split_indices
from builder.data.tabular import load_csv

__all__ = ["DatasetInfo", "Split", "Dataset", "DatasetSpec", "register_dataset", "list_datasets",
           "load_dataset", "load_csv", "load_image_folder", "save_dataset", "load_saved_dataset", "split_indices",
           "describe", "TASKS", "MODALITIES",
           "DatasetSource", "SOURCE_KINDS", "source_kinds", "check_compat", "adapt_graph", "fit_dataset",
           "Prediction", "predict"]


def __getattr__(name: str):
    if name in {"Prediction", "predict"}:
        from builder.data import predictions  # lazy: heavy (torch)

        return getattr(predictions, name)
    raise AttributeError(f"module 'builder.data' has no attribute {name!r}")
