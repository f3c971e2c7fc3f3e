"""Everything a person reads: the rows of every table (``decision_tables``, ``training_tables``,
``step_tables``, ``profile_tables``, ``swap_tables``, ``versions``, ``reproduction``, ``history``; captions and
number formats beside them), rendered to the terminal, Markdown, HTML with plots, JSON and CSV. No torch, no
runtime: records in, text out."""
