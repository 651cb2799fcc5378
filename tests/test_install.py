"""The package under test is the wheel a user installs. scripts/test builds it with maturin,
installs it into a fresh virtual environment with no Rust toolchain on PATH, and runs the whole suite
with that environment's Python, setting TEST_HVSTAT_WHEEL to the wheel's path (and
TEST_HVSTAT_NO_RUST=1 once cargo and rustc are off PATH). These tests check that arrangement: run
any other way (a developer's editable install), they skip."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest
import websockets

from conftest import running_server
from helpers import WAIT_SECS, clean_env, hvstat_exe

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "python" / "hvstat"
WHEEL = os.environ.get("TEST_HVSTAT_WHEEL")

pytestmark = pytest.mark.skipif(not WHEEL, reason="scripts/test runs these against the installed wheel (TEST_HVSTAT_WHEEL)")


def wheel_names() -> set[str]:
    assert WHEEL is not None
    with zipfile.ZipFile(WHEEL) as z:
        return set(z.namelist())


@pytest.mark.unit
def test_hvstat_comes_from_the_venv_not_the_checkout() -> None:
    import hvstat
    import hvstat._core

    assert sys.prefix != sys.base_prefix, "the tests run in a virtual environment"
    site = Path(sysconfig.get_path("platlib")).resolve()
    for module in (hvstat, hvstat._core):
        where = Path(module.__file__ or "").resolve()
        assert where.is_relative_to(site), f"{module.__name__} imported from {where}, not from {site}"
        assert not where.is_relative_to(SOURCE), f"{module.__name__} imported from the checkout: {where}"
    # Nothing on sys.path exposes the checkout's package (no editable-install hook, no PYTHONPATH).
    assert not any(Path(p or ".").resolve() == SOURCE.parent for p in sys.path), sys.path


@pytest.mark.unit
def test_installed_from_this_wheel_not_editable() -> None:
    assert WHEEL is not None
    dist = importlib.metadata.distribution("hvstat")
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    assert direct_url.get("url") == Path(WHEEL).resolve().as_uri(), direct_url
    assert "dir_info" not in direct_url, "an editable or directory install, not the wheel"


@pytest.mark.unit
def test_wheel_is_manylinux_abi3() -> None:
    assert WHEEL is not None
    tags = {line.split(":", 1)[1].strip() for line in _wheel_file("WHEEL").splitlines() if line.startswith("Tag:")}
    assert len(tags) == 1 and tags.pop().startswith("cp311-abi3-manylinux_"), tags


def _wheel_file(name: str) -> str:
    assert WHEEL is not None
    with zipfile.ZipFile(WHEEL) as z:
        (info,) = [n for n in z.namelist() if n.endswith(f".dist-info/{name}")]
        return z.read(info).decode()


@pytest.mark.unit
def test_wheel_holds_every_package_file_of_the_checkout() -> None:
    """Every module, the stub, py.typed and the dashboard's static files (web/) are in the wheel,
    and installed: a file maturin left out would only show as a 404 or an ImportError in the field."""
    expected = {
        "hvstat/" + p.relative_to(SOURCE).as_posix()
        for p in SOURCE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".so", ".pyc")
    }
    assert {"hvstat/py.typed", "hvstat/_core.pyi", "hvstat/web/index.html"} <= expected
    missing = expected - wheel_names()
    assert not missing, f"not in the wheel: {sorted(missing)}"
    site = Path(sysconfig.get_path("platlib"))
    assert not [n for n in expected if not (site / n).is_file()], "in the wheel but not installed"
    assert any(n.startswith("hvstat/_core.") and n.endswith(".so") for n in wheel_names())


@pytest.mark.unit
def test_libvirt_is_an_optional_extra() -> None:
    """A container-only host installs hvstat without libvirt-python (and so without libvirt headers)."""
    requires = importlib.metadata.requires("hvstat") or []
    libvirt = [r for r in requires if r.startswith("libvirt-python")]
    assert libvirt and all("extra ==" in r for r in libvirt), libvirt
    assert any("extra == 'libvirt'" in r or 'extra == "libvirt"' in r for r in libvirt), libvirt


@pytest.mark.unit
@pytest.mark.skipif(os.environ.get("TEST_HVSTAT_NO_RUST") != "1", reason="a Rust toolchain is on the system PATH here")
def test_no_rust_toolchain_on_path() -> None:
    assert shutil.which("cargo") is None and shutil.which("rustc") is None, os.environ.get("PATH")


@pytest.mark.server
def test_the_wheel_alone_brings_what_serve_and_ws_need(tmp_path: Path) -> None:
    """``pip install <wheel>``, no extras, into a fresh venv (a container-only host): pip finds
    nothing missing or in conflict, no test or libvirt package comes along, and the server it
    installs answers REST and ``/ws`` (uvicorn alone has no WebSocket implementation)."""
    assert WHEEL is not None
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=WAIT_SECS * 6)
    py = str(venv / "bin" / "python")
    pip = [py, "-m", "pip", "--disable-pip-version-check", "-q"]
    done = subprocess.run([*pip, "install", WHEEL], capture_output=True, text=True, timeout=600, env=clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    check = subprocess.run([*pip, "check"], capture_output=True, text=True, timeout=WAIT_SECS * 6)
    assert check.returncode == 0, check.stdout + check.stderr
    listed = subprocess.run(
        [py, "-c", "import importlib.metadata as m, json; print(json.dumps(sorted(d.metadata['Name'].lower() for d in m.distributions())))"],
        capture_output=True, text=True, check=True, timeout=WAIT_SECS * 6,
    )
    installed = set(json.loads(listed.stdout))
    assert {"hvstat", "uvicorn", "websockets", "starlette", "msgspec"} <= installed, installed
    assert not installed & {"libvirt-python", "pytest", "playwright", "psutil"}, installed
    workdir = tmp_path / "serve"
    workdir.mkdir()
    with running_server(workdir, exe=[str(venv / "bin" / "hvstat")]) as base:
        assert httpx.get(f"{base}/api/monitoring/node/metrics", timeout=10).status_code == 200

        async def hello() -> dict[str, object]:
            async with websockets.connect(base.replace("http", "ws", 1) + "/ws") as ws:
                return json.loads(await asyncio.wait_for(ws.recv(), WAIT_SECS))

        assert asyncio.run(hello())["type"] == "hello"


@pytest.mark.server
def test_installed_console_script_serves_the_api_and_the_dashboard(tmp_path: Path) -> None:
    """``pip install <wheel> && hvstat serve``: the venv's console script, with no Rust on PATH
    (scripts/test), answers the API and serves the dashboard's files from the installed package."""
    exe = hvstat_exe()
    assert Path(exe[0]).parent == Path(sysconfig.get_path("scripts")), exe
    version = subprocess.run([*exe, "--version"], capture_output=True, text=True, timeout=WAIT_SECS, env=clean_env())
    assert version.stdout.strip() == f"hvstat {importlib.metadata.version('hvstat')}", version
    with running_server(tmp_path) as base:
        assert httpx.get(f"{base}/api/monitoring/node/metrics", timeout=10).json()["cpu_usage"] is not None
        page = httpx.get(f"{base}/", headers={"Accept": "text/html"}, timeout=10)
        assert page.status_code == 200 and page.text == (SOURCE / "web" / "index.html").read_text()
        js = httpx.get(f"{base}/ui/app.js", timeout=10)
        assert js.status_code == 200 and js.text == (SOURCE / "web" / "app.js").read_text()
