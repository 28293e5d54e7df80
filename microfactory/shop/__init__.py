"""The shop: many cells and several partner companies on one PostgreSQL store.

- :mod:`~microfactory.shop.schema` — the store's tables, migrations and row-level security;
- :mod:`~microfactory.shop.store` — connecting as a partner or a cell; registering partners, cells and
  stations (the administrator);
- :mod:`~microfactory.shop.sync` — shipping a cell's journal, idempotently, chain-checked;
- :mod:`~microfactory.shop.verify` — the audit chain checked on the store's side;
- :mod:`~microfactory.shop.reading` — one read interface over a journal and the store;
- :mod:`~microfactory.shop.localserver` — a throwaway PostgreSQL for tests and the benchmark.

psycopg is imported by these modules only: a cell without a shop never loads it.
"""
