"""Orchestration: which stage runs when, what is written where, and progress."""
