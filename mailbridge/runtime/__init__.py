"""Composition root, process model, signals, sd_notify."""
