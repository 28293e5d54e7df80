"""Plant integration over OPC UA: the cell and its stations in the PackML model of OPC 30050.

Off by default: ``microfactory serve opcua --cell CELL --db JOURNAL``, or ``--opcua ENDPOINT`` on
``run`` and ``gui``. See ``docs/opcua.md``.
"""
