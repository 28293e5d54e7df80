"""Partners' privacy on the shop store: connected as partner A, every table and every crafted query gives
0 rows of partner B; the owner of a pooled machine sees its machine's time, energy and alarms of B's
work, never B's parameters, programs or measurements; a customer sees what a partner shared."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from microfactory.engine.journal import Journal
from microfactory.events import EventBus, EventKind
from microfactory.shop import schema
from microfactory.shop.localserver import LocalServer
from tests.shop.conftest import Shop, new_shop, record_lot

#: Tables that hold the partner's know-how or results: nobody else reads a row of them.
KNOW_HOW = ("lots", "parameter_values", "recipes", "programs", "parts", "steps", "step_data", "measurements",
            "image_hashes", "lot_reports", "journal_records", "part_links", "bookings", "shares")


@pytest.fixture(scope="module")
def two_partners(pg_server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """acme owns cell c1 with a pooled mill; bolt runs lot B1 on it and lot B2 on its own cell c2. (One
    store for the module: the tests read it; the one that shares adds rows no other test counts.)"""
    shop, tmp_path = new_shop(pg_server), tmp_path_factory.mktemp("partners")
    for name in ("acme", "bolt", "cust"):
        shop.partner(name)
    shop.cell("c1", "acme", stations={"mill": "acme", "inspect": "acme"}, pooled=("mill",))
    shop.cell("c2", "bolt", stations={"mill": "bolt", "inspect": "bolt"})
    from microfactory.shop import store

    store.serve(shop.admin, "c1", "bolt")
    record_lot(tmp_path / "c1.sqlite", "A1", partner="acme")
    record_lot(tmp_path / "c1.sqlite", "B1", partner="bolt")
    record_lot(tmp_path / "c2.sqlite", "B2", partner="bolt")
    bus = EventBus()
    journal = Journal(tmp_path / "c1.sqlite", bus=bus)
    bus.publish(EventKind.ALARM, "mill", code="9", text="G-code lock", severity="alarm", recovery="unlock")
    journal.close()
    for cell, owner in (("c1", "acme"), ("c2", "bolt")):
        sync = shop.sync(tmp_path / f"{cell}.sqlite", cell, owner)
        sync.sync()
        sync.close()
    with psycopg.connect(shop.admin, autocommit=True) as admin:
        admin.execute("SET microfactory.partner = 'bolt'")
        admin.execute("INSERT INTO bookings (partner, cell, station, lot) "
                      "VALUES ('bolt', 'c1', 'mill', 'B1')")
        admin.execute("INSERT INTO part_links (cell, part, partner, part_uid) "
                      "VALUES ('c2', 'B2-001', 'bolt', 'c1/B1-001')")
        admin.execute("ANALYZE")
    yield shop


def tables(shop: Shop) -> list[str]:
    with psycopg.connect(shop.admin) as admin:
        return [r[0] for r in admin.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                            "ORDER BY tablename")]


def count(db: psycopg.Connection, query: str, *args: object) -> int:
    row = db.execute(query, args or None).fetchone()
    return int(row[0]) if row else 0


def test_every_table_forces_row_level_security_and_the_login_cannot_bypass_it(two_partners: Shop) -> None:
    shop = two_partners
    with psycopg.connect(shop.admin) as admin:
        rows = admin.execute("SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
                             "JOIN pg_namespace n ON n.oid = c.relnamespace "
                             "WHERE n.nspname = 'public' AND c.relkind = 'r'").fetchall()
        assert len(rows) >= 20
        assert [r[0] for r in rows if not (r[1] and r[2])] == []
        role = f"{shop.db}_acme"
        su, bypass = admin.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s",
                                   (role,)).fetchone() or (True, True)
        assert (su, bypass) == (False, False)
        owned = admin.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner IN "
                              "(%s, %s)", (role, schema.APP_ROLE)).fetchone()
        assert owned == (0,)
        app = admin.execute("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = %s",
                            (schema.APP_ROLE,)).fetchone()
        assert app == (False, False, False)


def test_partner_a_reads_updates_and_deletes_no_row_of_partner_b_in_any_table(two_partners: Shop) -> None:
    shop = two_partners
    acme = shop.connect("acme")
    with psycopg.connect(shop.admin) as admin:
        before = {t: count(admin, f"SELECT count(*) FROM {t}") for t in tables(shop)}
    seen_machine = 0
    for table in tables(shop):
        columns = {r[0] for r in acme.execute("SELECT column_name FROM information_schema.columns "
                                              "WHERE table_name = %s", (table,))}
        if "partner" not in columns:
            continue
        visible = count(acme, f"SELECT count(*) FROM {table} WHERE partner = 'bolt'")
        if table in schema.MACHINE:
            # bolt's work on acme's pooled mill: acme sees its machine's time, and only that
            assert visible == count(acme, f"SELECT count(*) FROM {table} WHERE partner = 'bolt' "
                                          "AND owner = 'acme'"), table
            seen_machine += visible
        elif table not in ("stations", "station_holds", "cells", "partners"):
            assert visible == 0, f"{table}: acme sees {visible} of bolt's rows"
        if table in ("partners", "cells", "schema_version", "cell_sync", "journal_records"):
            continue  # no UPDATE/DELETE privilege at all for partners (checked below)
        with acme.transaction():
            assert acme.execute(f"UPDATE {table} SET partner = partner WHERE partner = 'bolt'").rowcount == 0
            assert acme.execute(f"DELETE FROM {table} WHERE partner = 'bolt'").rowcount == 0
    assert seen_machine > 0  # machine_time and machine_energy of B1 on acme's mill
    for table in ("partners", "cells", "journal_records"):
        with pytest.raises(errors.InsufficientPrivilege):
            acme.execute(f"DELETE FROM {table}")
    with psycopg.connect(shop.admin) as admin:
        after = {t: count(admin, f"SELECT count(*) FROM {t}") for t in tables(shop)}
    assert after == before
    acme.close()


def test_the_pooled_machine_owner_sees_time_energy_and_alarms_not_parameters_programs_or_measurements(
        two_partners: Shop) -> None:
    acme = two_partners.connect("acme")
    mt = acme.execute("SELECT station, busy_s, ok FROM machine_time WHERE partner = 'bolt' "
                      "ORDER BY key").fetchall()
    assert mt and {r[0] for r in mt} == {"mill", "inspect"}  # B1 on acme's machines
    assert count(acme, "SELECT count(*) FROM machine_time WHERE cell = 'c2'") == 0  # bolt's own machines
    assert count(acme, "SELECT count(*) FROM machine_energy WHERE partner = 'bolt' AND lot = 'B1'") == 2
    assert acme.execute("SELECT station, code, text FROM machine_alarms").fetchall() == [
        ("mill", "9", "G-code lock")]
    for table in ("parameter_values", "programs", "measurements", "steps", "step_data", "image_hashes"):
        assert count(acme, f"SELECT count(*) FROM {table} WHERE partner = 'bolt'") == 0, table
    # bolt's own login sees all of its lot on the pooled cell
    bolt = two_partners.connect("bolt")
    assert count(bolt, "SELECT count(*) FROM steps WHERE cell = 'c1' AND lot = 'B1'") == 4
    assert count(bolt, "SELECT count(*) FROM parameter_values WHERE lot = 'B1'") == 2
    assert count(bolt, "SELECT count(*) FROM steps WHERE lot = 'A1'") == 0
    acme.close()
    bolt.close()


#: Crafted reads, each written for a partner ``{p}`` and one of its lots ``{lot}``: about bolt they must
#: give 0 rows to acme; about acme's own lot A1 they give rows (so the query itself works), except
#: the statistics view, which shows no values of a table under row-level security at all.
CRAFTED = [
    ("SELECT count(*) FROM steps s JOIN machine_time m USING (cell, key) WHERE m.partner = '{p}'", True),
    ("SELECT count(*) FROM (SELECT * FROM programs UNION ALL SELECT * FROM programs) p "
     "WHERE partner = '{p}'", True),
    ("SELECT count(*) FROM lots WHERE lot IN (SELECT lot FROM machine_energy WHERE partner = '{p}')", True),
    ("SELECT count(*) FROM steps WHERE lot = '{lot}' OR (partner = '{p}' AND lot = '{lot}')", True),
    ("SELECT count(*) FROM (SELECT (SELECT body FROM programs WHERE partner = '{p}' LIMIT 1) AS b) x "
     "WHERE b IS NOT NULL", True),
    ("WITH RECURSIVE r AS (SELECT key FROM steps WHERE partner = '{p}' UNION SELECT key FROM r) "
     "SELECT count(*) FROM r", True),
    ("SELECT count(*) FROM parameter_values v JOIN lots l USING (cell, lot) WHERE l.lot = '{lot}'", True),
    ("SELECT count(*) FROM journal_records WHERE body LIKE '%%\"{lot}\"%%'", True),
    ("SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND most_common_vals::text LIKE '%%{lot}%%'",
     False),
]


@pytest.mark.parametrize(("query", "control"), CRAFTED)
def test_crafted_queries_give_no_row_of_another_partner(two_partners: Shop, query: str,
                                                        control: bool) -> None:
    acme = two_partners.connect("acme")
    assert count(acme, query.format(p="bolt", lot="B1")) == 0
    assert count(acme, query.format(p="bolt", lot="B2")) == 0
    if control:
        assert count(acme, query.format(p="acme", lot="A1")) > 0
    acme.close()


def test_claiming_another_partner_by_setting_or_role_gives_nothing(two_partners: Shop) -> None:
    acme = two_partners.connect("acme")
    assert count(acme, "SELECT count(*) FROM steps") == 4  # its own lot A1
    acme.execute("SET microfactory.partner = 'bolt'")
    assert count(acme, "SELECT count(*) FROM steps") == 0  # not bolt's, and no longer its own
    assert count(acme, "SELECT count(*) FROM programs") == 0
    acme.execute("SELECT set_config('microfactory.partner', 'bolt', false)")
    assert count(acme, "SELECT count(*) FROM parameter_values") == 0
    with pytest.raises(errors.InsufficientPrivilege):
        acme.execute(f'SET ROLE "{two_partners.db}_bolt"')
    with pytest.raises(errors.InsufficientPrivilege):
        acme.execute(f'SET ROLE "{two_partners.db}_cell_c1"')  # the cell's login is not acme's to take
    acme.execute("SET microfactory.partner = 'acme'")
    with pytest.raises(errors.InsufficientPrivilege):
        acme.execute("SET row_security = off; SELECT count(*) FROM steps")
    acme.close()


def test_writing_as_another_partner_or_defining_functions_is_refused(two_partners: Shop) -> None:
    acme = two_partners.connect("acme")
    with pytest.raises(errors.InsufficientPrivilege):  # new row violates row-level security policy
        acme.execute("INSERT INTO programs (partner, sha256, body) VALUES ('bolt', 'x', 'G0 X0')")
    with pytest.raises(errors.InsufficientPrivilege):
        acme.execute("UPDATE steps SET partner = 'bolt' WHERE lot = 'A1'")
    with pytest.raises(errors.InsufficientPrivilege):
        acme.execute("CREATE FUNCTION peek() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM steps'")
    with pytest.raises(errors.InsufficientPrivilege):
        acme.execute("CREATE TABLE loot AS SELECT * FROM steps")
    acme.close()


def test_a_customer_sees_what_a_partner_shared_and_nothing_else(two_partners: Shop) -> None:
    shop = two_partners
    cust = shop.connect("cust")
    assert count(cust, "SELECT count(*) FROM steps") == 0
    bolt = shop.connect("bolt")
    bolt.execute("INSERT INTO shares (partner, part_uid, customer, scope) VALUES ('bolt', 'c1/B1-001', "
                 "'cust', "
                 "'steps')")
    assert count(cust, "SELECT count(*) FROM steps WHERE part_uid = 'c1/B1-001'") == 2
    assert count(cust, "SELECT count(*) FROM steps") == 2  # not B1-002, not B2
    assert count(cust, "SELECT count(*) FROM measurements") == 0  # measurements were not agreed
    bolt.execute("INSERT INTO shares (partner, part_uid, customer, scope) VALUES ('bolt', 'c1/B1-001', "
                 "'cust', "
                 "'measurements')")
    assert count(cust, "SELECT count(*) FROM measurements") == 1
    assert count(cust, "SELECT count(*) FROM image_hashes") == 1
    for table in ("programs", "step_data", "parameter_values", "lots", "journal_records"):
        assert count(cust, f"SELECT count(*) FROM {table}") == 0, table
    with pytest.raises(errors.InsufficientPrivilege):  # a customer cannot share on a partner's behalf
        cust.execute("INSERT INTO shares (partner, part_uid, customer, scope) VALUES ('bolt', 'c1/B1-002', "
                     "'cust', 'steps')")
    cust.close()
    bolt.close()
