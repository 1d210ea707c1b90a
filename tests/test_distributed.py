"""``labeler apply|verify --engine ray``: a real local Ray cluster (2 CPUs, started once for the
module) and a real S3 endpoint over HTTP on loopback (moto's standalone server, what s3fs tests
against). Every end-to-end test runs on S3 and on plain paths.

Killing the driver mid-run and running again must finish the rest and never label twice.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import encode, make_image

from labeler import SigningKey, Status, TrustStore, verify
from labeler.cli import main
from labeler.verification import verify_text

ray = pytest.importorskip("ray")
pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

from labeler.distributed.report import read_report  # noqa: E402
from labeler.distributed.storage import Store  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray's own, on its DataContext


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """What every worker sees, set before Ray starts (its workers inherit it): fake AWS
    credentials for moto, and the policy (a name and a key file: never the key itself)."""
    keys = tmp_path_factory.mktemp("keys")
    key = SigningKey.generate()
    (keys / "labeler.pem").write_bytes(key.private_pem())
    (keys / "labeler.pem").chmod(0o600)
    (keys / "labeler.pub.pem").write_bytes(key.public_key.to_pem())
    values = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LABELER_PROVIDER_NAME": "ExampleAI",
        "LABELER_KEY_FILE": str(keys / "labeler.pem"),
        "LABELER_WATERMARK": "off",
        "KEYS": str(keys),
    }
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield values
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def cluster(env: dict[str, str]) -> Iterator[str]:
    """A local Ray cluster with 2 CPUs; yields its address for drivers in other processes."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def endpoint(env: dict[str, str]) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1, a free port."""
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        yield url
    finally:
        server.stop()


_count = 0


@pytest.fixture(params=["s3", "local"])
def where(
    request: pytest.FixtureRequest, tmp_path: Path, endpoint: str, cluster: str
) -> tuple[str, list[str]]:
    """A fresh root (an S3 bucket, or a directory) and the CLI options that reach it."""
    global _count
    if request.param == "local":
        return str(tmp_path), []
    _count += 1
    bucket = f"bucket{_count}"
    Store(f"s3://{bucket}", {"endpoint_url": endpoint}).fs.mkdir(bucket)
    return f"s3://{bucket}", ["--endpoint-url", endpoint]


def _store(root: str, endpoint: str) -> Store:
    return Store(root, {"endpoint_url": endpoint} if root.startswith("s3://") else {})


def _inputs(count: int, size: tuple[int, int] = (96, 64)) -> dict[str, bytes]:
    files = {}
    for i in range(count):
        fmt, suffix = ("JPEG", "jpg") if i % 3 else ("PNG", "png")
        files[f"d{i % 2}/f{i:04d}.{suffix}"] = encode(make_image(size, seed=i), fmt)
    return files


def _upload(store: Store, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        store.write(store.path(rel), data)


def _labelled_once(name: str, data: bytes, trust: TrustStore) -> bool:
    if name.endswith((".md", ".txt")):
        text = data.decode("utf-8")
        return verify_text(text, trust).ok and text.count("AI生成") == 1
    return data.count(b"<TC260:AIGC>") == 1 and verify(data, trust).status is Status.VERIFIED


def _trust(env: dict[str, str]) -> TrustStore:
    return TrustStore.from_paths([Path(env["KEYS"]) / "labeler.pub.pem"])


def test_apply_and_verify_end_to_end(
    where: tuple[str, list[str]],
    endpoint: str,
    env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, opts = where
    files = {**_inputs(12), "notes/a.txt": b"The answer is 42.\n", "bad.jpg": b"\xff\xd8 not a jpeg"}
    _upload(_store(f"{root}/in", endpoint), files)
    apply = ["apply", f"{root}/in/", "--out", f"{root}/out/", "--engine", "ray", *opts]

    assert main([*apply, "--report", str(tmp_path / "run1.parquet")]) == 1  # the bad file
    out = capsys.readouterr()
    assert out.out.strip().endswith("13 labeled, 0 skipped (already labeled), 1 failed")
    assert "bad.jpg: failed: unsupported content" in out.err
    rows = {Path(r["key"]).name: r for r in read_report(tmp_path / "run1.parquet")}
    assert len(rows) == len(files) and rows["bad.jpg"]["status"] == "failed"
    assert rows["f0001.jpg"]["status"] == "labeled" and rows["f0001.jpg"]["bytes"] == len(
        files["d1/f0001.jpg"]
    )
    assert all(r["ms"] > 0 for r in rows.values())

    output = _store(f"{root}/out", endpoint)
    trust = _trust(env)
    assert sorted(output.names()) == sorted(k for k in files if k != "bad.jpg")
    for rel in output.names():
        assert _labelled_once(rel, output.read(output.path(rel)), trust), rel

    # idempotent: a second run labels nothing
    assert main([*apply, "--report", str(tmp_path / "run2.jsonl")]) == 1
    assert capsys.readouterr().out.strip().endswith("0 labeled, 13 skipped (already labeled), 1 failed")
    second = read_report(tmp_path / "run2.jsonl")
    assert {r["status"] for r in second} == {"skipped", "failed"}
    assert all(_labelled_once(rel, output.read(output.path(rel)), trust) for rel in output.names())

    verify_cmd = ["verify", f"{root}/out/", "--engine", "ray", "--trust", env["KEYS"], *opts]
    assert main([*verify_cmd, "--report", str(tmp_path / "v.jsonl"), "--require", "verified"]) == 0
    assert capsys.readouterr().out.strip() == "13 verified"
    verdicts = read_report(tmp_path / "v.jsonl")
    assert {(r["status"], r["verdict"]) for r in verdicts} == {("verified", "confirmed")}
    # the originals carry no label: below --require, exit 1
    assert main(["verify", f"{root}/in/", "--engine", "ray", *opts, "--require", "verified"]) == 1
    assert "13 no-label, 1 unreadable" in capsys.readouterr().out


def test_in_place_labels_each_object_once(
    where: tuple[str, list[str]], endpoint: str, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, opts = where
    files = _inputs(6)
    store = _store(f"{root}/data", endpoint)
    _upload(store, files)
    cmd = ["apply", f"{root}/data", "--in-place", "--engine", "ray", "--no-visible", *opts]
    assert main(cmd) == 0
    assert main(cmd) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0 labeled, 6 skipped (already labeled), 0 failed"
    trust = _trust(env)
    assert all(_labelled_once(rel, store.read(store.path(rel)), trust) for rel in files)


def test_single_object_and_endpoint_from_environment(
    endpoint: str, cluster: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A single key as the source; the endpoint from AWS_ENDPOINT_URL (botocore reads it)."""
    Store("s3://single", {"endpoint_url": endpoint}).fs.mkdir("single")
    store = _store("s3://single", endpoint)
    store.write("single/one.jpg", encode(make_image(seed=9), "JPEG"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    assert main(["apply", "s3://single/one.jpg", "--out", "s3://single/out", "--engine", "ray"]) == 0
    assert _labelled_once("one.jpg", store.read("single/out/one.jpg"), _trust(env))


def test_local_temporaries_of_a_killed_run_are_removed(tmp_path: Path, cluster: str) -> None:
    """On a file system that can show half a file, writes go through a temporary and a rename;
    the next listing removes temporaries a killed run left."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in/a.jpg").write_bytes(encode(make_image(), "JPEG"))
    debris = tmp_path / "in/.a.jpg.labeler-tmp-123-1"
    debris.write_bytes(b"half")
    store = Store(str(tmp_path / "in"))
    assert list(store.names()) == ["a.jpg"]
    assert not debris.exists()
    assert not Store("memory://x").local and Store("memory://x").atomic_put


def test_missing_extra_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.jpg").write_bytes(encode(make_image(), "JPEG"))
    monkeypatch.setitem(sys.modules, "ray", None)
    code = main(["apply", str(tmp_path), "--out", str(tmp_path / "o"), "--engine", "ray"])
    assert code == 2
    assert "pip install 'aigc-labeler[ray,s3]'" in capsys.readouterr().err


def test_ray_options_need_the_ray_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(tmp_path), "--out", str(tmp_path / "o"), "--report", "r.jsonl"]) == 2
    assert "--engine ray" in capsys.readouterr().err


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "labeler.cli", *args]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["s3", "local"])
def test_driver_killed_mid_run_then_rerun(
    kind: str, tmp_path: Path, endpoint: str, cluster: str, env: dict[str, str]
) -> None:
    """SIGKILL the driver (a process joined to the cluster) once some outputs exist; every output
    is then complete and labelled once, and a re-run finishes the rest without labelling twice."""
    root, opts = (str(tmp_path), []) if kind == "local" else ("s3://killtest", ["--endpoint-url", endpoint])
    if kind == "s3":
        Store(root, {"endpoint_url": endpoint}).fs.mkdir("killtest")
    # locally a batch's outputs appear together: 5 batches; on S3 each object when it is written
    files = _inputs(320 if kind == "local" else 100, size=(128, 96))
    source, output = _store(f"{root}/in", endpoint), _store(f"{root}/out", endpoint)
    _upload(source, files)
    cmd = _cli("apply", f"{root}/in", "--out", f"{root}/out", "--engine", "ray", "--address", cluster, *opts)
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done_at_kill = _kill_when(proc, lambda: _count_outputs(output), at_least=4)
    trust = _trust(env)
    present = list(_keys(output))
    assert done_at_kill < len(files), "the run finished before it could be killed"
    for rel in present:  # no half object, nothing labelled twice
        assert _labelled_once(rel, output.read(output.path(rel)), trust), rel

    report = tmp_path / "rerun.jsonl"
    rerun = subprocess.run([*cmd, "--report", str(report)], cwd=tmp_path, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    rows = read_report(report)
    output.fs.invalidate_cache()
    assert len(rows) == len(files)
    skipped = sum(r["status"] == "skipped" for r in rows)
    assert skipped >= len(present) and sum(r["status"] == "labeled" for r in rows) == len(files) - skipped
    assert sorted(_keys(output)) == sorted(files)
    for rel in files:
        assert _labelled_once(rel, output.read(output.path(rel)), trust), rel


def _keys(store: Store) -> Iterator[str]:
    """Outputs present; a run's temporaries in flight are left alone."""
    try:
        yield from store.names(clean=False)
    except FileNotFoundError:
        return


def _count_outputs(store: Store) -> int:
    store.fs.invalidate_cache()
    return len(list(_keys(store)))


def _kill_when(proc: subprocess.Popen[bytes], count: Callable[[], int], at_least: int) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        done = count()
        if done >= at_least:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return done
        time.sleep(0.05)
    out, err = proc.communicate()
    raise AssertionError(f"no outputs to kill at: {proc.returncode} {out!r} {err[-2000:]!r}")


@pytest.mark.slow
def test_example_script_runs_against_ray_start_head(tmp_path: Path, env: dict[str, Any]) -> None:
    """examples/ray_cluster.sh: ray start --head, apply against it, verify, ray stop."""
    script = ROOT / "examples/ray_cluster.sh"
    (tmp_path / "in").mkdir()
    for rel, data in _inputs(4).items():
        (tmp_path / "in" / Path(rel).name).write_bytes(data)
    run_env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "LABELER_TRUST": env["KEYS"],
    }
    proc = subprocess.Popen(
        ["bash", str(script), str(tmp_path / "in"), str(tmp_path / "out")],
        cwd=tmp_path,
        env=run_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # on a timeout, the script's own head node goes down with it
    )
    try:
        stdout, stderr = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stdout + stderr
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert "4 labeled, 0 skipped (already labeled), 0 failed" in done.stdout
    assert "4 verified" in done.stdout
    assert json.loads((tmp_path / "report.jsonl").read_text().splitlines()[0])["status"] == "verified"


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rpartition(")")[2].split()[1])


def _descends_from_us(pid: int) -> bool:
    while pid > 1:
        pid = _parent(pid)
        if pid == os.getpid():
            return True
    return False


def _task_workers() -> list[int]:
    """Worker processes of the cluster this test process started (none of anyone else's)
    running one of our batches: Ray titles them after the task."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            title = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if (
            proc.name.isdigit()
            and b"MapBatches(_process_batch)" in title
            and _descends_from_us(int(proc.name))
        ):
            pids.append(int(proc.name))
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds Ray workers through /proc")
def test_worker_killed_mid_run(tmp_path: Path, cluster: str, env: dict[str, str]) -> None:
    """SIGKILL a worker process of our test cluster while it labels a batch: the run still ends
    (Ray retries the batch, or lists it as failed), and after at most one re-run every file is
    labelled exactly once."""
    files = _inputs(320, size=(128, 96))
    source, output = Store(str(tmp_path / "in")), Store(str(tmp_path / "out"))
    _upload(source, files)
    cmd = _cli("apply", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--engine", "ray")
    proc = subprocess.Popen([*cmd, "--address", cluster], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed = 0
    deadline = time.monotonic() + 60
    while not killed and proc.poll() is None and time.monotonic() < deadline:
        for pid in _task_workers()[:1]:  # mid-batch: its outputs are not committed yet
            time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
            killed += 1
        time.sleep(0.02)
    _, err = proc.communicate(timeout=120)
    assert killed, "no worker to kill: the run ended first"
    assert proc.returncode in (0, 1), err
    rerun = subprocess.run([*cmd, "--address", cluster], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    trust = _trust(env)
    assert sorted(_keys(output)) == sorted(files)
    for rel in files:
        assert _labelled_once(rel, output.read(output.path(rel)), trust), rel


class _PoisonStore(Store):
    """A source whose ``poison.jpg`` kills the worker process reading it (as a crash in a C
    library would). Sent to the workers by value (cloudpickle), like the test module."""

    def read(self, path: str) -> bytes:
        if path.endswith("poison.jpg"):
            os._exit(1)
        return super().read(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_PoisonStore, (self.url, self.options, self.__dict__.get("single")))


@pytest.mark.slow
def test_a_file_that_kills_its_worker_fails_alone(tmp_path: Path, cluster: str, env: dict[str, str]) -> None:
    from ray import cloudpickle

    from labeler.batch import Options
    from labeler.distributed.ray_engine import Job, run

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        files = {**_inputs(10), "poison.jpg": encode(make_image(), "JPEG")}
        _upload(Store(str(tmp_path / "in")), files)
        job = Job(
            "apply", _PoisonStore(str(tmp_path / "in")), Store(str(tmp_path / "out")), options=Options()
        )
        rows = {Path(r["key"]).name: r for batch in run(job, workers=2) for r in batch}
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert rows.pop("poison.jpg")["detail"] == "its worker process died while working on this file (3 times)"
    assert {r["status"] for r in rows.values()} == {"labeled"} and len(rows) == 10
