"""microfactory — the cell controller for table-top micro-factories (core package, never imports Qt)."""

__version__ = "0.1.0"
