"""Each bad config value: exit status 2, one line on stderr naming the key, no template written."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.app import cdk_json_context, main

BAD_VALUES = [
    ({"dr_region": "us-east-1"}, "dr_region: must differ from primary_region"),
    ({"retention_years": "5"}, "retention_years: Input should be greater than or equal to 7"),
    ({"account": "12345"}, "account: String should match pattern"),
    ({"primary_region": "mars-north-1"}, "primary_region: 'mars-north-1' is not an AWS region"),
    ({"env_name": "Bad_Name"}, "env_name: String should match pattern"),
    ({"backup_retention_days": "90"}, "backup_retention_days: Input should be less than or equal to 35"),
    ({"hosted_zone_name": "example.org"}, "dr_endpoint: traffic management needs"),
]


@pytest.mark.parametrize(("override", "message"), BAD_VALUES, ids=[next(iter(o)) for o, _ in BAD_VALUES])
def test_bad_value_exits_with_one_line_naming_the_key_and_writes_nothing(
    override: dict[str, str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(cdk_json_context(override), str(tmp_path))
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_every_bad_value_is_reported_not_just_the_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(cdk_json_context({"account": "12345", "retention_years": "5"}), str(tmp_path))
    lines = capsys.readouterr().err.strip().splitlines()
    assert sorted(line.split(":")[1].strip() for line in lines) == ["account", "retention_years"]
