"""The recipe engine: PackML cell, scheduler with pipelined parts, fault policies, journal, energy.

Start from :mod:`microfactory.engine.api` (``Controller``, ``EngineThread``); see ``docs/engine.md``.
"""
