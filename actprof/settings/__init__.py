"""The settings records embed, and the parsers every option shares; each setting checked the moment it is built.

A config validates itself in ``__post_init__``, so a value is checked the same way whether it came from the
command line, from Python, or from a record loaded from disk, and its defaults are written once, in its
fields: the command line takes them from there. Records embed ``ModelConfig`` and ``TrainConfig``
(``training``) and ``ProfileSettings`` (``profile``), which is why these sit below the schema and import
nothing of actprof but ``errors``. Every other stage keeps its config beside its code, in its own
``config.py`` (``data``, ``training``, ``export``, ``measure``, ``launchers``).
"""
