"""What is measured and how: the harness (warm-up, interleaved rounds, intervals; ``harness``), memory,
the profile stage, the single-op microbenchmark, training steps per stack (``steps``), ``swap`` in any network
(its inputs: ``declared``, ``inputs``, ``inputs_files``; ``distance``), and runtime versions side by side
(``versions``: one cached environment per build, ``environments``; a worker process each, ``workers``/``worker``)."""
