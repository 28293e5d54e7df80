"""Lot reports from the run journal: JSON, CSV and a PDF certificate of conformance.

``lot.build(journal, lot)`` gathers the report (summary with OEE, per-part genealogy, SPC, audit
verification, signatures); ``tables`` writes JSON and CSV; ``pdf`` renders the certificate.
"""
