"""Settings come from LEADROUTE_* variables once; bad values name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadroute.config import Settings, SettingsError


class TestSettings:
    """Parsing the environment into one frozen Settings."""

    def test_defaults_are_the_embedded_local_service(self) -> None:
        s = Settings.from_env({})
        assert (s.host, s.port, s.embedded, s.rules_path) == ("127.0.0.1", 8000, True, Path("rules"))

    def test_values_are_parsed_from_strings(self) -> None:
        s = Settings.from_env(
            {
                "LEADROUTE_PORT": "9001",
                "LEADROUTE_SEED_DEMO": "false",
                "LEADROUTE_DATABASE_URL": "postgresql://db/x",
                "LEADROUTE_REDIS_URL": "redis://cache:6379/0",
                "PATH": "/usr/bin",
            }
        )
        assert (s.port, s.seed_demo, s.embedded) == (9001, False, False)

    def test_settings_are_frozen(self) -> None:
        s = Settings.from_env({})
        with pytest.raises(AttributeError):
            s.port = 1  # type: ignore[misc]

    @pytest.mark.parametrize(
        ("env", "variable"),
        [
            ({"LEADROUTE_PORT": "eighty"}, "LEADROUTE_PORT"),
            ({"LEADROUTE_PORT": "70000"}, "LEADROUTE_PORT"),
            ({"LEADROUTE_SEED_DEMO": "perhaps"}, "LEADROUTE_SEED_DEMO"),
            ({"LEADROUTE_DATABSE_URL": "postgresql://x/y"}, "LEADROUTE_DATABSE_URL"),
            ({"LEADROUTE_DATABASE_URL": "postgresql://x/y"}, "LEADROUTE_REDIS_URL"),
            (
                {"LEADROUTE_DATABASE_URL": "mysql://x/y", "LEADROUTE_REDIS_URL": "redis://r"},
                "LEADROUTE_DATABASE_URL",
            ),
            ({"LEADROUTE_LOG_LEVEL": "LOUD"}, "LEADROUTE_LOG_LEVEL"),
        ],
    )
    def test_bad_values_name_the_variable(self, env: dict[str, str], variable: str) -> None:
        with pytest.raises(SettingsError, match=variable):
            Settings.from_env(env)
