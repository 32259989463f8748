"""``models audits`` / ``models audit``, the live figures of ``models list``, ``models compare``
when nothing can be compared, and ``--promote-if-better`` needing ``--from-catalog``."""

from __future__ import annotations

from click.testing import CliRunner
from services.audit_catalog import add_product, add_version

from catalog_ai.cli import cli
from catalog_ai.db import migrate, unit_of_work
from catalog_ai.services.audits import sample_audits


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_audits_from_the_command_line(catalog_home) -> None:
    migrate.upgrade()
    with unit_of_work() as s:
        mv = add_version(s)
        ids = [add_product(s, mv, f"a{i}", "Fruit > Apple", 0.99, auto=True) for i in range(3)]
        sample_audits(s, ids[:2], model_version_id=mv.id, rate=1.0)
        sample_audits(s, ids[2:], model_version_id=mv.id, rate=0.0)
    listed = _invoke("models", "audits")
    assert listed.exit_code == 0, listed.output
    assert "2 open audits" in listed.output and f"product {ids[0]}  Fruit > Apple" in listed.output
    right = _invoke("models", "audit", str(ids[0]), "--reviewer", "bob")
    assert right.exit_code == 0, right.output
    assert f"product {ids[0]}: correct (Fruit > Apple), labelled by bob" in right.output
    wrong = _invoke(
        "models", "audit", str(ids[1]), "--reviewer", "bob", "--category", "Veg > Carrot"
    )
    assert "incorrect (Veg > Carrot)" in wrong.output
    again = _invoke("models", "audit", str(ids[1]), "--reviewer", "bob")
    assert again.exit_code != 0 and "no open audit" in again.output
    models = _invoke("models", "list").output
    assert (
        "  m1  tiny  live: auto-accept precision 0.500 (0.095-0.905, 2 audits); leaf accuracy "
        "0.500 (0.095-0.905, 2 checked); 3 auto-accepted, 2 audited; train hold-out leaf "
        "accuracy 0.900" in models
    )


def test_compare_with_nothing_labelled_after_both_is_one_line(catalog_home) -> None:
    migrate.upgrade()
    with unit_of_work() as s:
        add_version(s, "m1")
        add_version(s, "m2")
    result = _invoke("models", "compare", "m1", "m2", "--bootstrap", "10")
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1
    assert "no product labelled by a person after both m1 and m2 were made" in lines[0]


def test_promote_if_better_goes_with_from_catalog(catalog_home, tmp_path) -> None:
    result = _invoke(
        "train", "--data", str(tmp_path), "--out", str(tmp_path / "m"), "--promote-if-better"
    )
    assert result.exit_code == 2 and "--promote-if-better goes with --from-catalog" in result.output
