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


def test_train_from_catalog_promote_if_better_end_to_end(catalog_home, tmp_path) -> None:
    import time

    from helpers import make_tree

    train = (
        "--backbone",
        "tiny-cnn",
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--accelerator",
        "cpu",
        "--devices",
        "1",
    )
    assert (
        _invoke("catalog", "import-folder", str(make_tree(tmp_path / "old", per_class=6))).exit_code
        == 0
    )
    first = _invoke("train", "--from-catalog", *train, "--out", str(tmp_path / "m1"))
    assert first.exit_code == 0, first.output
    assert _invoke("models", "register", str(tmp_path / "m1"), "--activate").exit_code == 0
    time.sleep(1.1)  # labelled strictly after m1's bundle was written (whole seconds)
    new = make_tree(tmp_path / "new", per_class=3, seed=9)
    assert _invoke("catalog", "import-folder", str(new)).exit_code == 0
    second = _invoke(
        "train",
        "--from-catalog",
        *train,
        "--out",
        str(tmp_path / "m2"),
        "--promote-if-better",
        "--margin",
        "0.02",
    )
    assert second.exit_code == 0, second.output
    assert "held out 12 recent products people labelled (12 photos)" in second.output
    assert "registered, not active: " in second.output
    assert "only 12 products neither version trained on" in second.output
    listed = _invoke("models", "list").output.splitlines()
    assert listed[0].startswith("* ") and "not promoted: only 12 products" in listed[1]
