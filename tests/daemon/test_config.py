"""Settings: defaults < TOML < SWARMLEARN_* environment < flags, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmlearn.config import Settings, SettingsError, load_settings


def test_defaults_are_loopback_and_a_local_data_dir() -> None:
    settings = load_settings(environ={})
    assert settings.listen == "127.0.0.1:50051"
    assert settings.data_dir == Path("var/swarmlearn")
    assert settings == Settings()


def test_precedence_toml_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "swarmlearn.toml"
    config.write_text('listen = "127.0.0.1:6000"\ndata_dir = "/srv/a"\nmax_batch_events = 500\nlog_level = "debug"\n')
    from_file = load_settings(config_file=config, environ={})
    assert (from_file.listen, from_file.data_dir, from_file.max_batch_events) == ("127.0.0.1:6000", Path("/srv/a"), 500)
    assert from_file.log_level == "DEBUG"
    env = {"SWARMLEARN_DATA_DIR": "/srv/b", "SWARMLEARN_MAX_BATCH_EVENTS": "700"}
    from_env = load_settings(config_file=config, environ=env)
    assert (from_env.listen, from_env.data_dir, from_env.max_batch_events) == ("127.0.0.1:6000", Path("/srv/b"), 700)
    flags = load_settings(config_file=config, environ=env, overrides={"data_dir": "/srv/c", "listen": None})
    assert (flags.listen, flags.data_dir, flags.max_batch_events) == ("127.0.0.1:6000", Path("/srv/c"), 700)


def test_config_file_from_environment_and_swarmlearn_table(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[swarmlearn]\nlisten = "unix:/run/swarmlearn.sock"\n')
    assert load_settings(environ={"SWARMLEARN_CONFIG": str(config)}).listen == "unix:/run/swarmlearn.sock"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"environ": {"SWARMLEARN_MAX_BATCH_EVENTS": "many"}}, "max_batch_events: cannot use 'many'"),
        ({"environ": {"SWARMLEARN_LISTN": "x"}}, "unknown setting 'listn'"),
        ({"environ": {}, "overrides": {"max_batch_events": 0}}, "max_batch_events: must be in"),
        ({"environ": {}, "overrides": {"sqlite_synchronous": "sometimes"}}, "sqlite_synchronous: must be one of"),
        ({"environ": {}, "overrides": {"grace_period_s": -1}}, "grace_period_s: must be >= 0"),
        ({"environ": {"SWARMLEARN_RETENTION_MAX_AGE_S": "-1"}}, "retention_max_age_s: must be >= 0"),
        ({"environ": {"SWARMLEARN_RETENTION_MAX_AGE_S": "nan"}}, "retention_max_age_s: must be >= 0"),
        ({"environ": {}, "overrides": {"retention_max_events": -5}}, "retention_max_events: must be >= 0"),
        ({"environ": {"SWARMLEARN_PREDICT_ANSWER_WITHIN_S": "inf"}}, "predict_answer_within_s: must be finite"),
        ({"environ": {"SWARMLEARN_PREDICT_ANSWER_WITHIN_S": "nan"}}, "predict_answer_within_s: must be finite"),
        ({"environ": {}, "overrides": {"retention_interval_s": 0}}, "retention_interval_s: must be in"),
    ],
)
def test_bad_values_name_the_setting(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(SettingsError, match=message.replace("[", r"\[")):
        load_settings(**kwargs)


def test_unknown_key_or_broken_file_is_an_error(tmp_path: Path) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text("lisen = 'x'\n")
    with pytest.raises(SettingsError, match="unknown setting 'lisen'"):
        load_settings(config_file=typo, environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("listen = \n")
    with pytest.raises(SettingsError, match=r"broken\.toml"):
        load_settings(config_file=broken, environ={})
    with pytest.raises(SettingsError, match=r"missing\.toml"):
        load_settings(config_file=tmp_path / "missing.toml", environ={})


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().listen = "0.0.0.0:1"  # type: ignore[misc]


def test_readme_documents_every_setting_with_its_default() -> None:
    import dataclasses

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in readme.splitlines() if line.startswith("| `")}
    defaults = Settings()
    for field in dataclasses.fields(Settings):
        assert field.name in rows, f"README lacks setting {field.name}"
        row = rows[field.name]
        assert f"`SWARMLEARN_{field.name.upper()}`" in row
        assert f"`{getattr(defaults, field.name)}`" in row, f"README shows another default for {field.name}"


def test_embedding_code_may_pass_a_string_data_dir() -> None:
    assert Settings(data_dir="/tmp/x").db_path == Path("/tmp/x/events.sqlite3")  # type: ignore[arg-type]
