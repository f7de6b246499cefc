"""The CLI's edge: bad settings and domain errors become one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import pytest

from server.cli import main


def test_bad_setting_names_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("BYLINE_PORT", "abc")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("byline: bad setting: BYLINE_PORT='abc'") and "Traceback" not in err


@pytest.mark.real  # loads MiniLM before it reads the corpus
def test_missing_corpus_is_one_line(tmp_path, capsys):
    assert main(["index", str(tmp_path / "nowhere"), "--index-dir", str(tmp_path / "index")]) == 1
    assert capsys.readouterr().err.strip().endswith("nowhere: no such file or folder")
