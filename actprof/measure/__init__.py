"""What is measured and how: the harness (warm-up, interleaved rounds, intervals; ``harness``), memory,
the profile stage, the single-op microbenchmark, and ``swap`` in any network."""
