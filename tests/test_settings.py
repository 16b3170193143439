from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fulfil import settings
from fulfil.settings import SettingsError


def test_embedded_default_lives_under_the_data_dir(tmp_path: Path) -> None:
    s = settings.load({"FULFIL_DATA_DIR": str(tmp_path / "d")})
    assert s.database_url == f"sqlite:///{tmp_path / 'd' / 'fulfil.db'}"
    assert s.embedded_redis and s.redis_db_file == tmp_path / "d" / "redis" / "redis.rdb"
    key_file = tmp_path / "d" / "pii.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert settings.load({"FULFIL_DATA_DIR": str(tmp_path / "d")}).pii_key == s.pii_key


def test_two_data_dirs_share_nothing(tmp_path: Path) -> None:
    a = settings.load({"FULFIL_DATA_DIR": str(tmp_path / "a")})
    b = settings.load({"FULFIL_DATA_DIR": str(tmp_path / "b")})
    assert a.database_url != b.database_url
    assert a.redis_db_file != b.redis_db_file
    assert a.pii_key != b.pii_key


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    settings.load({"FULFIL_DATA_DIR": str(tmp_path)})
    os.chmod(tmp_path / "pii.key", 0o644)
    with pytest.raises(SettingsError, match=r"FULFIL_DATA_DIR: key file .* readable by others"):
        settings.load({"FULFIL_DATA_DIR": str(tmp_path)})


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql+asyncpg://u@h/db"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://u@h/db"}, "FULFIL_PII_KEY"),
        ({"DATABASE_URL": "postgresql://u@h/db", "FULFIL_PII_KEY": "c2hvcnQ="}, "FULFIL_PII_KEY"),
        ({"DATABASE_URL": "postgresql://u@h/db", "FULFIL_PII_KEY": "!!!"}, "FULFIL_PII_KEY"),
        ({"REDIS_URL": "http://h:6379"}, "REDIS_URL"),
        ({"FULFIL_LOG_LEVEL": "LOUD"}, "FULFIL_LOG_LEVEL"),
        ({"FULFIL_PLANNER": "fastest"}, "FULFIL_PLANNER"),
        ({"FULFIL_PLAN_SECONDS": "0"}, "FULFIL_PLAN_SECONDS"),
        ({"FULFIL_PLAN_SEED": "-1"}, "FULFIL_PLAN_SEED"),
        ({"FULFIL_PLAN_SEED": "seven"}, "FULFIL_PLAN_SEED"),
        ({"FULFIL_SHARD_CELLS": "0"}, "FULFIL_SHARD_CELLS"),
    ],
)
def test_a_bad_setting_names_its_variable(tmp_path: Path, env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as info:
        settings.load({"FULFIL_DATA_DIR": str(tmp_path), **env})
    assert str(info.value).startswith(f"{variable}:")


def test_production_settings_and_secrets_hidden(tmp_path: Path) -> None:
    key = settings.new_key()
    s = settings.load(
        {
            "FULFIL_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgresql://fulfil:s3cret@db:5432/fulfil",
            "REDIS_URL": "redis://:hunter2@redis:6379/0",
            "FULFIL_PII_KEY": key,
        }
    )
    assert s.database_url.startswith("postgresql+psycopg://")
    assert not s.embedded_database and not s.embedded_redis
    shown = repr(s)
    assert "s3cret" not in shown and "hunter2" not in shown and key not in shown
