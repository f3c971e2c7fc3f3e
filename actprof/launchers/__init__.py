"""Where training jobs run: here, one after another (``local``), or as Ray tasks on a cluster (``ray``)."""
