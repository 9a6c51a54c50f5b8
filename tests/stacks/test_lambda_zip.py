"""The runbook function's asset zip (stacks/lambda_zip.py): the asset directory's files, as they are, made once."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from stacks.lambda_zip import asset_hash, zip_of


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    source = tmp_path / "asset-0123456789abcdef"
    (source / "dr_runbooks").mkdir(parents=True)
    (source / "dr_runbooks" / "__init__.py").write_text("VERSION = 1\n")
    (source / "pydantic_core").mkdir()
    native = source / "pydantic_core" / "_core.so"
    native.write_bytes(b"\x7fELF" + bytes(range(256)) * 64)
    native.chmod(0o700)
    return source


def test_the_zip_holds_every_file_of_the_directory_byte_for_byte(directory: Path) -> None:
    with zipfile.ZipFile(zip_of(directory)) as archive:
        assert sorted(archive.namelist()) == ["dr_runbooks/__init__.py", "pydantic_core/_core.so"]
        assert archive.read("pydantic_core/_core.so") == (directory / "pydantic_core" / "_core.so").read_bytes()


def test_the_zip_sits_next_to_the_directory_and_carries_its_hash(directory: Path) -> None:
    made = zip_of(directory)
    assert made == directory.parent / "asset-0123456789abcdef.zip"
    assert asset_hash(made) == "0123456789abcdef"


def test_every_entry_is_readable_by_the_lambda_runtime_user_and_keeps_its_execute_bit(directory: Path) -> None:
    with zipfile.ZipFile(zip_of(directory)) as archive:
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
    assert all(mode & 0o444 == 0o444 for mode in modes.values())
    assert modes["pydantic_core/_core.so"] & stat.S_IXUSR


def test_zips_of_the_same_content_are_identical_bytes(directory: Path, tmp_path: Path) -> None:
    first = zip_of(directory).read_bytes()
    again = tmp_path / "again" / directory.name
    again.parent.mkdir()
    directory.rename(again)
    assert zip_of(again).read_bytes() == first


def test_the_zip_is_as_readable_as_the_directory_beside_it(directory: Path) -> None:
    assert stat.S_IMODE(zip_of(directory).stat().st_mode) == 0o644


def test_an_existing_zip_is_reused_not_rebuilt(directory: Path) -> None:
    made = zip_of(directory)
    made.write_bytes(b"already built")
    assert zip_of(directory).read_bytes() == b"already built"


def test_a_failed_zip_leaves_no_zip_and_no_partial_file(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    read_bytes = Path.read_bytes

    def failing(path: Path) -> bytes:
        if path.suffix == ".so":
            raise OSError("disk error")
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", failing)
    with pytest.raises(OSError, match="disk error"):
        zip_of(directory)
    assert sorted(path.name for path in directory.parent.iterdir()) == [directory.name]
