"""Carrying out a plan: the executor and the per-daemon lease."""
