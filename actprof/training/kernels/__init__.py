"""actprof's C kernels for CPU training: ``conv_pool.c``, built and trusted by ``build``, called by ``ops``.

They speed experiments up and never change an answer: each computes what torch's layers compute (tested
against them), and without them (no C compiler, an untrusted cache, ``ACTPROF_KERNELS=0``) the model keeps
torch's own layers."""
