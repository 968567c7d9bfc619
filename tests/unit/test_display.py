"""How values reach people: the terminal never gets raw control characters, errors never a server path."""

from __future__ import annotations

import pytest

from airflow_resume_provider.display import error_summary, terminal_safe


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # clear the screen, cursor home
        ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),  # retitle the terminal (OSC ... BEL)
        ("boom\r\nRESUMABLE", "boom\\r\\nRESUMABLE"),  # a faked line
        ("\x9b31m", "\\x9b31m"),  # C1 CSI
        ("\x00\x7f\x08", "\\x00\\x7f\\x08"),
        ("abc\u202edcba", "abc\\u202edcba"),  # right-to-left override
        ("café ✓ [x] 'q'", "café ✓ [x] 'q'"),  # printable text stays as it is
    ],
)
def test_terminal_safe_escapes_every_control_character(raw, shown):
    assert terminal_safe(raw) == shown


def test_terminal_safe_leaves_nothing_below_space():
    text = terminal_safe("".join(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]))
    assert all(0x20 <= ord(c) < 0x7F for c in text)


def test_an_os_error_is_summarised_without_its_path(tmp_path):
    with pytest.raises(OSError) as err, open(tmp_path, "rb"):
        pass
    assert error_summary(err.value) == "IsADirectoryError: Is a directory"
    with pytest.raises(OSError) as err, open(tmp_path / "missing" / "x", "rb"):
        pass
    assert error_summary(err.value) == "FileNotFoundError: No such file or directory"


def test_other_errors_lose_the_folders_they_name():
    err = ValueError("cannot open s3://bucket/state/dag_id=etl/x.json or /srv/logs/dag_id=etl/y.json")
    assert error_summary(err, ["s3://bucket/state", "/srv/logs/"]) == (
        "ValueError: cannot open dag_id=etl/x.json or dag_id=etl/y.json"
    )
    assert error_summary(RuntimeError()) == "RuntimeError"
