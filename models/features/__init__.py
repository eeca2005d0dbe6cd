"""Market-state features per (underlying, trading day), all causal (DESIGN §8).

Modules: ``options_nb`` (numba kernel: per-day chain aggregates) and ``options`` (seed 004's
options features on top of it), ``bars`` (seed 001's technical and volatility features),
``edges`` (seed 003's edge detectors), ``rolling`` (trailing-window statistics), ``table``
(assembly of one underlying's table, missing-input bookkeeping), ``build`` (``osd features
build``: parallel, incremental, atomic; ``read_feature_table``) and ``reference`` (a pandas
implementation of the kernel, the tests' oracle and the benchmark's baseline). Regimes are in
:mod:`models.regimes`, entry gates over the table in :mod:`models.gates`.
"""
