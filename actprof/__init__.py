"""actprof: does a faster-converging activation pay for its test-time cost?"""

__version__ = "0.1.0"
