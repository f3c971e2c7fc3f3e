"""Random words and keep decisions for dropout, drawn the same way with the kernels and without them.

``random_words`` draws uniform 32-bit words from torch's generator: ``training.dropout.FastDropout`` splits
them into keep decisions in torch, the kernels (``ops``) split them in C, so a seed gives the same masks
either way. ``bernoulli_keep`` draws decisions for rates no multiple of 1/256 from the kernels' counter-based
generator, seeded by one draw from torch's.
"""

from __future__ import annotations

import torch

from actprof.training.kernels.build import library


def bits_per_draw(p: float) -> int | None:
    """The fewest random bits (1, 2, 4 or 8) whose draws give Bernoulli(p) exactly, or None."""
    return next((bits for bits in (1, 2, 4, 8) if float(p * (1 << bits)).is_integer()), None)


def random_words(units: int, p: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """The uniform 32-bit words (int32) that decide ``units`` units at rate p, from torch's generator."""
    per_word = 2 * (16 // bits_per_draw(p))  # decisions per 32-bit draw
    words = torch.empty((units + per_word - 1) // per_word, dtype=torch.int32, device=device)
    return words.random_(-(2**31), 2**31)


def counter_masks() -> bool:
    """Whether ``bernoulli_keep`` can draw dropout masks here (the kernels are turned on and built)."""
    return library() is not None


def bernoulli_keep(units: int, p: float) -> torch.Tensor:
    """``units`` int16 keep decisions (1 kept, 0 dropped), each dropped with probability p (within 2^-33),
    from a counter-based generator (conv_pool.c) seeded by one draw from torch's: a seed gives the same
    masks. For rates whose decisions ``dropout.decisions`` cannot split from a few random bits."""
    lib = library()
    if lib is None:
        raise RuntimeError("the dropout mask kernel is not built here; check counter_masks() first")
    keep = torch.empty(units, dtype=torch.int16)
    seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
    if lib.bernoulli_keep(keep.data_ptr(), units, seed, min(round(p * 2**32), 2**32 - 1)):
        raise RuntimeError("actprof's mask kernel refused its arguments")
    return keep
