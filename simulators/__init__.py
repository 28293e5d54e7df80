"""Byte-faithful station simulators behind real ptys (no code shared with the drivers they test)."""
