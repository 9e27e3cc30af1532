"""`dialer config check` validates the [acd] section the way `dialer run` will use it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from dialer.cli import app

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.toml"


def test_example_config_is_valid() -> None:
    result = CliRunner().invoke(app, ["config", "check", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "ok:" in result.output


def test_bad_skill_level_fails_on_one_line_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.read_text().replace("escalation = [[0, 7], [30, 4], [60, 1]]", "escalation = [[0, 17]]"))
    result = CliRunner().invoke(app, ["config", "check", str(bad)])
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "[acd]" in lines[0] and "17" in lines[0] and "between 1 and 10" in lines[0]


def test_unknown_strategy_names_the_allowed_ones(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.read_text().replace('strategy = "longest-idle"', 'strategy = "fastest"'))
    result = CliRunner().invoke(app, ["config", "check", str(bad)])
    assert result.exit_code == 2 and "strategy" in result.output and "longest-idle" in result.output


def _check(tmp_path: Path, text: str) -> tuple[int, list[str]]:
    path = tmp_path / "acd.toml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["config", "check", str(path)])
    return result.exit_code, [ln for ln in result.output.splitlines() if ln.strip()]


def test_errors_name_the_table_the_file_uses_not_a_list_index(tmp_path: Path) -> None:
    code, lines = _check(tmp_path, '[acd.queues.q1]\nskill = "s"\n[acd.queues.sales]\nstrategy = "bogus"\n')
    assert code == 2 and len(lines) == 1
    assert "[acd.queues.sales] strategy:" in lines[0] and "queues.1" not in lines[0]


def test_agents_without_a_queue_are_an_error_not_ignored(tmp_path: Path) -> None:
    code, lines = _check(tmp_path, '[acd.agents.1001]\npassword = "x"\nskills = { sales = 12 }\n')
    assert code == 2 and len(lines) == 1 and "no queue" in lines[0] and "[acd.queues.<id>]" in lines[0]


def test_agent_queues_may_be_a_list_of_names(tmp_path: Path) -> None:
    base = '[acd.queues.sales]\nskill = "sales"\n[acd.agents.1001]\npassword = "x"\nqueues = ["sales"]\n'
    code, lines = _check(tmp_path, base + "skills = { sales = 5 }\n")
    assert code == 0, lines
    code, lines = _check(tmp_path, base + "skills = { sales = 12 }\n")
    assert code == 2 and "level 12" in lines[0] and "1-10" in lines[0]
