"""The Dask engine gives the local engine's outputs byte for byte (on a two-worker LocalCluster)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmclean.cli import app
from crmclean.pipeline import RunOptions, run

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=logging.ERROR)
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()


SAMPLES = Path(__file__).parents[1] / "samples"


def _export(tmp_path: Path) -> list[Path]:
    """Salesforce contacts with their accounts (account merges re-point contacts too)."""
    return [SAMPLES / "salesforce_contacts.csv", SAMPLES / "salesforce_accounts.csv"]


def test_dask_engine_outputs_equal_local_engine(tmp_path: Path, scheduler: str) -> None:
    inputs = _export(tmp_path)
    opts = {"inputs": inputs, "outdir": None, "target": "salesforce", "as_of": dt.date(2026, 11, 1)}
    local = run(RunOptions(**opts))  # type: ignore[arg-type]
    remote = run(RunOptions(**opts, engine="dask", scheduler=scheduler))  # type: ignore[arg-type]
    assert local.summary["states"]["merged"] > 50  # the comparison covers real merges, not an empty stage
    assert sorted(local.files) == sorted(remote.files)
    for name, data in local.files.items():
        assert remote.files[name] == data, name


def test_dask_engine_from_the_command_line(tmp_path: Path, scheduler: str) -> None:
    inputs = _export(tmp_path)
    runner = CliRunner()
    base = [*map(str, inputs), "--target", "salesforce", "--as-of", "2026-11-01", "--isolated"]
    a = runner.invoke(app, ["run", *base, "-o", str(tmp_path / "local")])
    b = runner.invoke(app, ["run", *base, "-o", str(tmp_path / "dask"), "--engine", "dask", "--scheduler", scheduler])
    assert a.exit_code == 0 and b.exit_code == 0, (a.output, b.output)
    for f in sorted((tmp_path / "local").iterdir()):
        assert (tmp_path / "dask" / f.name).read_bytes() == f.read_bytes(), f.name


def test_unreachable_scheduler_is_a_one_line_tempfail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMCLEAN_DASK_TIMEOUT", "1")
    inputs = _export(tmp_path)
    res = CliRunner().invoke(app, ["run", str(inputs[0]), "-o", str(tmp_path / "o"), "--isolated", "--engine", "dask", "--scheduler", "tcp://127.0.0.1:9"])
    assert res.exit_code == 75
    assert "E-SCHEDULER-UNREACHABLE" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def test_engine_flags_are_checked(tmp_path: Path) -> None:
    inputs = _export(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(inputs[0]), "-o", str(tmp_path / "o"), "--isolated", "--engine", "spark"])
    assert res.exit_code == 2 and "E-ENGINE" in res.output
    res = runner.invoke(app, ["run", str(inputs[0]), "-o", str(tmp_path / "o"), "--isolated", "--scheduler", "tcp://127.0.0.1:9"])
    assert res.exit_code == 2 and "--engine dask" in res.output
    for bad in ("foo", "http://[::1", "tcp://host", "tcp://a b:1"):
        res = runner.invoke(app, ["run", str(inputs[0]), "-o", str(tmp_path / "o"), "--isolated", "--engine", "dask", "--scheduler", bad])
        assert res.exit_code == 2 and "E-SCHEDULER-ADDRESS" in res.output and "Traceback" not in res.output, bad


def test_dask_blocking_with_split_rules_equals_local(tmp_path: Path, scheduler: str) -> None:
    """Blocks over the limit cut by a split key, with a focus and opened records as a later pass
    has them: the shuffled blocking gives the local engine's pairs, counts and oversized lists."""
    import sys

    import numpy as np

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from bench.synth import generate, write_csv

    from crmclean.dedupe.blocking import candidate_pairs
    from crmclean.dedupe.features import build_features
    from crmclean.engine import DaskEngine
    from crmclean.normalize import NormalizeContext, normalize
    from crmclean.pipeline import load_inputs
    from crmclean.rules.packs import load_pack

    write_csv(generate(1500, seed=4), "salesforce", tmp_path / "s.csv")
    loaded = load_inputs([tmp_path / "s.csv"])
    pack = load_pack("default")
    f = build_features(normalize(loaded.frame, pack, NormalizeContext(loaded.sources), workers=1).frame.reset_index(drop=True))
    rules = list(pack.get("dedupe", "blocking"))
    assert any(r.get("split") for r in rules)
    rng = np.random.default_rng(3)
    focus = rng.random(len(f)) < 0.3
    opened: list[np.ndarray | None] = [rng.random(len(f)) < 0.05 for _ in rules]
    engine = DaskEngine(scheduler)
    try:
        for args in ((None, None), (focus, opened)):
            local = candidate_pairs(f, rules, 3, None, *args)
            remote = engine.candidate_pairs(f, rules, 3, None, *args)
            assert sum(r.split_pairs for r in local.rules) > 0  # the pieces are exercised
            assert np.array_equal(local.left, remote.left) and np.array_equal(local.right, remote.right)
            assert local.rules == remote.rules
            for (lp, lk), (rp, rk) in zip(local.oversized, remote.oversized, strict=True):
                assert sorted(zip(lp.tolist(), lk.tolist())) == sorted(zip(rp.tolist(), rk.tolist()))
    finally:
        engine.close()
