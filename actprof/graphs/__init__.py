"""ONNX graph surgery, without PyTorch or a runtime: activation regions, swaps and the pool-first move
(``surgery``), activation sites in any network (``sites``), node census (``census``), safe loading
(``files``)."""
