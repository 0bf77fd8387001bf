"""The graph stage: the project file, the layer registry, validation and shape inference, compile, layout.

Modules in pipeline order: :mod:`.project` (the file format), :mod:`.registry` and :mod:`.layers` (one
``LayerSpec`` per layer type), :mod:`.counts` (parameter counts without torch), :mod:`.shapes` (analysis:
validation, shape inference, size budget), :mod:`.compile` (torch.fx), :mod:`.layout`, :mod:`.templates`.
Importing this package imports no torch; :mod:`.compile` does.
"""
