"""Settings come from LEADROUTE_* variables once; bad values name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadroute.config import Settings, SettingsError, service_links
from process_support import cli_env, leadroute


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


K8S_LINKS = {
    "LEADROUTE_SERVICE_HOST": "10.0.0.1",
    "LEADROUTE_SERVICE_PORT": "8000",
    "LEADROUTE_SERVICE_PORT_HTTP": "8000",
    "LEADROUTE_PORT": "tcp://10.0.0.1:8000",
    "LEADROUTE_PORT_8000_TCP": "tcp://10.0.0.1:8000",
    "LEADROUTE_PORT_8000_TCP_PROTO": "tcp",
    "LEADROUTE_PORT_8000_TCP_PORT": "8000",
    "LEADROUTE_PORT_8000_TCP_ADDR": "10.0.0.1",
}


class TestKubernetesServiceLinks:
    """A Service named ``leadroute`` injects LEADROUTE_* links; they are skipped, typos are not."""

    def test_service_links_are_not_settings(self) -> None:
        s = Settings.from_env(K8S_LINKS)
        assert s.port == 8000  # the default, not "tcp://10.0.0.1:8000"
        assert service_links(K8S_LINKS) == sorted(K8S_LINKS)

    def test_a_numeric_port_is_still_the_setting(self) -> None:
        env = {**K8S_LINKS, "LEADROUTE_PORT": "9000"}
        assert Settings.from_env(env).port == 9000
        assert "LEADROUTE_PORT" not in service_links(env)

    @pytest.mark.parametrize(
        ("name", "meant"),
        [
            ("LEADROUTE_DATABSE_URL", "LEADROUTE_DATABASE_URL"),
            ("LEADROUTE_WORKER", "LEADROUTE_WORKERS"),
            ("LEADROUTE_PORTS", "LEADROUTE_PORT"),
            ("LEADROUTE_REDIS_PREFX", "LEADROUTE_REDIS_PREFIX"),
        ],
    )
    def test_a_misspelled_setting_is_refused_with_a_suggestion(self, name: str, meant: str) -> None:
        with pytest.raises(SettingsError, match=f"{name}: unknown setting; did you mean {meant}\\?"):
            Settings.from_env({**K8S_LINKS, name: "1"})

    @pytest.mark.parametrize(
        "name",
        ["LEADROUTE_SERVICE_HOSTNAME", "LEADROUTE_PORT_8000_TCP_HOST", "LEADROUTE_PORT_HTTP_TCP"],
    )
    def test_near_miss_link_shapes_are_refused(self, name: str) -> None:
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: "x"})

    def test_the_cli_logs_one_note_and_image_default_refuses_missing_urls(self) -> None:
        """The CLI, run with service links set, logs one note naming them; with embedded servers
        off (the image's default) missing URLs are a clear error, not an embedded database."""
        env = cli_env(allow_embedded="false") | K8S_LINKS
        run = leadroute("migrate", env=env)  # fails only for the missing URLs, after the note
        assert run.returncode == 1
        assert "ignoring 8 Kubernetes service-link variable(s)" in run.stderr
        assert "LEADROUTE_DATABASE_URL and LEADROUTE_REDIS_URL are not set" in run.stderr
