"""Fault-injection and bad-input suite: the factory survives crashes and garbage without losing or duplicating a row."""
