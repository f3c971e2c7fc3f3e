"""The records every stage writes, and where they meet the disk.

Frozen dataclasses under one schema version, one module per document: ``training`` (a run, a model), ``profiling``
(a profile, a microbenchmark), ``reports`` (the verdict), ``swap`` (another network's activation tax),
``steps`` (a training step per stack), ``versions`` (runtime builds side by side), ``reproduction`` (a
published experiment); ``environment`` (where a record was made); ``storage`` (atomic writes, the one JSON path,
model files); ``history``/``history_file`` (results kept over time in SQLite); ``trust`` (whether a cached file
may be loaded or run). A record
read from disk is rebuilt through the same constructors, so the settings inside it are checked too.
"""

# 7: runtime-versions records' build-to-build changes (``adjacent``; older records read with none);
# 6: swap's site roles, output distances and several inputs;
# 5: networks beyond the CNNs (a run's NetworkInfo), optimizers, reproductions; 4: steps priced per training stack,
# the trainer's identity; 3: learning-rate sweeps, architecture, interpolated
# time to accuracy; 2: deployment cells
SCHEMA_VERSION = 7
