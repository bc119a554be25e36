import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `import thinkfl_rl`

from thinkfl_rl.tests import harness  # noqa: E402


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("rl") / "sim-s3"
    harness.run_cli("simulate", "--preset", "online-boutique", "--duration", "1h", "--faults", "5", "--seed", "3", "--out", str(d))
    return d


@pytest.fixture(scope="session")
def export(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export")
    # Every case for training: the contract tests want every question.
    harness.run_cli("export", "rl-dataset", "--data", str(data), "--held-out-fraction", "0", "--out", str(out))
    return out


@pytest.fixture(scope="session")
def server(data, tmp_path_factory):
    s = harness.Server("--data", str(data), "--ttl", "120", log=tmp_path_factory.mktemp("log") / "env.log")
    yield s
    s.close()


@pytest.fixture()
def env_url(server, monkeypatch):
    monkeypatch.setenv("THINKFL_ENV_URL", server.url)
    monkeypatch.setenv("THINKFL_RUN", "pytest")
    return server.url
