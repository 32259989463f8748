"""The progress helper: tqdm on stderr when asked for, silent otherwise."""

from __future__ import annotations

from catalog_ai.progress import progress_bar


def test_a_bar_asked_for_writes_to_stderr_and_counts(capsys):
    with progress_bar(total=3, desc="working", unit="photo") as bar:
        bar.update(2)
        bar.set_postfix_str("ok")
        bar.update()
        assert bar.n == 3
    err = capsys.readouterr().err
    assert "working" in err and "3/3" in err


def test_a_bar_not_asked_for_is_silent_but_usable(capsys):
    with progress_bar(total=3, desc="working", enable=False) as bar:
        bar.update(3)
        bar.set_postfix_str("ok")
    assert capsys.readouterr() == ("", "")


def test_off_a_terminal_it_redraws_rarely(capsys):
    # pytest's captured stderr is no terminal: like a log file.
    with progress_bar(total=1, desc="logged") as bar:
        assert bar.mininterval == 5.0
