"""The networks and how they train: built from a config (``model``), dropout drawn from a few random bits
(``dropout``), the C kernels of the first block and the pools (``kernels``), the training loop and what it
records (``loop``), and the sweep of trainings with their run files (``sweep``)."""
