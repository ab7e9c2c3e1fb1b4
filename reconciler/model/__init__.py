"""Immutable values that flow through the pipeline: desired, remote, observed, plan."""
