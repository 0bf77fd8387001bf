"""The graph stage: the project file, the layer registry, validation and shape inference, compile, layout.

Modules in pipeline order: :mod:`.project` (the file format), :mod:`.edit` (graph edits as the Build page
makes them), :mod:`.spec` (what a layer type is), :mod:`.layers` (one ``LayerSpec`` per layer type, a module per
family), :mod:`.registry` (looking specs up), :mod:`.counts` (parameter counts without torch), :mod:`.shapes`
(the analysis pass: validation, shape inference, size budget, one phase per function) and :mod:`.report` (what
it finds), :mod:`.compile` (torch.fx), :mod:`.layout` (canvas positions), :mod:`.templates`.
Importing this package imports no torch; :mod:`.compile` does.
"""
