"""Settings come from CHATQ_* variables, with nested groups and comma lists."""

from __future__ import annotations

from chatq.shared.settings import Settings


def test_defaults_point_at_the_embedded_parts(monkeypatch):
    for name in ("CHATQ_REDIS_URL", "CHATQ_PROVIDER_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert settings.effective_redis_url == "redis://127.0.0.1:6379/0"
    assert settings.effective_provider_base_url == "http://127.0.0.1:8400/v1"


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("CHATQ_MODELS", "gpt-4o-mini, gpt-4o")
    monkeypatch.setenv("CHATQ_PROVIDER_TIMEOUT__READ", "7.5")
    monkeypatch.setenv("CHATQ_RETRY__MAX_RETRIES", "2")
    monkeypatch.setenv("CHATQ_PROVIDER_API_KEY", "secret-value")
    monkeypatch.setenv("CHATQ_PROVIDER_BASE_URL", "https://api.example.test/v1/")
    settings = Settings(_env_file=None)
    assert settings.models == ["gpt-4o-mini", "gpt-4o"]
    assert settings.default_model == "gpt-4o-mini"
    assert settings.provider_timeout.read == 7.5
    assert settings.retry.max_retries == 2
    assert settings.effective_provider_base_url == "https://api.example.test/v1"
    assert "secret-value" not in repr(settings)


def test_the_local_provider_serves_its_model_unless_models_says_otherwise(monkeypatch):
    monkeypatch.delenv("CHATQ_MODELS", raising=False)
    monkeypatch.setenv("CHATQ_PROVIDER", "local")
    assert Settings(_env_file=None).models == ["smollm2"]
    monkeypatch.setenv("CHATQ_MODELS", "tiny")
    assert Settings(_env_file=None).models == ["tiny"]
