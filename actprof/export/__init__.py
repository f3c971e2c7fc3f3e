"""From trained networks to ONNX files, and files derived from them: the export with its checker, parity and
census (``exporter``, ``verify``; its settings in ``config``), the graph store that saves re-exporting
(``store``), the exact pool-first rewrite (``rewrite``), and the int8 / fp16 deployment models (``precision``)."""
