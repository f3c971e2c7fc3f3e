"""Everything a person reads: the rows of every table (``tables``, ``training_tables``), rendered to the
terminal, Markdown, HTML with plots, JSON and CSV. No torch, no runtime: records in, text out."""
