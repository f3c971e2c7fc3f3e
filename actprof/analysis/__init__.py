"""Statistics over seeds (``evidence``), learning-rate sweeps (``learning_rate``), the verdict and break-even
(``verdict``), and the CI gate (``gate``). Pure functions over records: no torch, no runtime."""
