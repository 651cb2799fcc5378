"""Every HTTP route fuzzed from its own OpenAPI description (schemathesis, against a real
``hvstat serve`` with the node, container, VM and alert sources on, and the fleet view on a real
VictoriaMetrics that this server writes to): no answer is a 5xx, every
answer matches the documented status codes, content types and schemas, and what the schema says is
invalid is refused with a 4xx.

Left out: schemathesis's "a schema-valid request is accepted" check, because some valid-looking
values depend on the running service and the clock, not on the schema: an alert rule's name (the
config's rules), and a history ``step`` finer than the full-resolution window allows for an old
``since`` (tests/test_history.py covers those refusals).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import engines
from conftest import free_port, running_server

pytestmark = [pytest.mark.server, pytest.mark.victoriametrics]

CONFIG = """
[monitoring]
node_metrics_interval = 1
vm_metrics_interval = 1

[alerts]
enabled = true

[[alerts.rules]]
name = "node-cpu"
metric = "node.cpu_usage"
op = ">"
threshold = 99.5
severity = "low"
"""


def schemathesis_exe() -> str:
    beside = Path(sys.executable).parent / "schemathesis"
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    if found is None:
        pytest.fail("schemathesis is not installed (it is in the test extra: pip install '.[test]')")
    return found


# A request the schema calls invalid must get one of hvstat's refusals: a 400 for a bad parameter,
# 404/409 for a reference, 413/414 from the request limits (a long invalid query string is refused
# for its length first). Not a 5xx, which schemathesis would count as a refusal by default.
SCHEMATHESIS_TOML = """
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "404", "405", "409", "413", "414"]
"""


def fleet_config(vm: engines.Engine, tmp_path: Path) -> str:
    """Remote write to ``vm`` and the fleet view on it: the fleet routes answer from a real engine."""
    return f'''
[remote_write]
enabled = true
url = "{vm.write_url}"
buffer_dir = "{tmp_path / "buffer"}"

[fleet]
query_url = "{vm.base}"
'''


def test_every_route_against_its_openapi_description(tmp_path: Path) -> None:
    settings = tmp_path / "schemathesis.toml"
    settings.write_text(SCHEMATHESIS_TOML)
    (tmp_path / "engine").mkdir()
    with engines.victoria_metrics(tmp_path / "engine", free_port()) as vm, running_server(tmp_path, CONFIG + fleet_config(vm, tmp_path)) as base:
        run = subprocess.run(
            [
                schemathesis_exe(),
                "--config-file",
                str(settings),
                "run",
                f"{base}/openapi.json",
                "--url",
                base,
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
                "--max-examples",
                "100",
                "--seed",
                "20261207",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,  # its .schemathesis/ cache goes there, not into the checkout
        )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    # Every operation of the document was exercised, not skipped.
    selected = re.search(r"Selected: (\d+)/(\d+)", run.stdout)
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert selected and tested, run.stdout[-3000:]
    assert selected[1] == selected[2] == tested[1] and int(tested[1]) >= 16, run.stdout[-3000:]
