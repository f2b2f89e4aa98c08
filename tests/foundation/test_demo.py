"""`aietl demo` as a user runs it: its own platform, six steps with real results, a clean stop."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from aietl.shared.embedded_broker import free_port


def aietl(*arguments: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aietl.services.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_runs_the_whole_loop_on_a_platform_of_its_own() -> None:
    done = aietl("demo", timeout=240)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output

    steps = re.findall(r"^(\d)\. (.+)$", done.stdout, re.MULTILINE)
    assert [number for number, _ in steps] == ["1", "2", "3", "4", "5", "6"], output
    # 2. the rename and its mapping, read back from the drift worker's detection
    assert "renamed_column: column customer_name renamed to customerName" in output
    assert 'SQL: CAST("customerName" AS VARCHAR(100)) AS "customer_name"' in output
    assert re.search(r"accepted it .*: status adapted, baseline v2", output)
    # 3. the latest value online; the earlier one for a training row dated between the writes
    assert "spend_30d=310.50 (present), orders_30d=7 (present), avg_order=44.36 (present)" in output
    assert re.search(r"training row as of \S+: spend_30d=120\.00, orders_30d=3\n", output)
    # 4. rendered SQL of the built-in template on the platform's SQLite database
    assert re.search(r"with full_load_sqlite 1\.0\.0 .*\n.*1 valid, 0 invalid", output)
    assert re.search(r'\| CREATE TABLE IF NOT EXISTS "main"\."dim_customers_[0-9a-f]{6}"', output)
    # 5. the degrading pipeline ranked far riskier than a healthy one, for memory reasons
    risky = re.search(r"payments_cdc: failure probability (\d\.\d\d) within 24 h", output)
    calm = re.search(r"for contrast, healthy \w+: (\d\.\d\d)", output)
    assert risky and calm, output
    assert float(risky.group(1)) >= 0.7 > float(calm.group(1))
    assert re.search(r"- memory_\w+ [\d.]+ \(healthy threshold", output)
    assert "/api/v1/advanced/predict/resources/payments_cdc/plot.png?project_id=demo" in output
    # 6. the right document on top, with its deterministic chunk id; the re-ingest embedded nothing
    assert re.search(r"\d\.\d{4} pw-reset \[[0-9a-f]{16}:00000:[0-9a-f]{16}\]", output)
    assert "again: 4 unchanged, 0 embedded" in output

    assert "Platform stopped (exit code 0)." in output
    assert re.fullmatch(r"Demo passed in \d+ s: .*top search hit pw-reset\.", done.stdout.splitlines()[-1])
    assert "eyJ" not in output, "a token was printed"
    folder = re.search(r"Starting aietl up in (\S+) on", output)
    assert folder and not Path(folder.group(1)).exists(), "the temporary data dir was left behind"


def test_a_failed_step_is_named_with_the_reason_and_exits_non_zero() -> None:
    password = "never-printed-secret-42"
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = aietl("demo", "--url", url, "--password", password, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "step 1 (Log in) failed:" in output
    assert "Demo passed" not in output
    assert password not in output
