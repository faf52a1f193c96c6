"""`make run` is `iopcare up --demo`: the launcher starts the broker, the services and the gateway,
loads the demo patient and prints what each service holds, then the $handoff of an inpatient
unit's patient through the FHIR gateway. This runs that command as `make run` does (on free ports,
with its own data folder) and checks what it prints, so a broken demo shows here and not first at
a newcomer's `make run`; then Ctrl-C stops it all.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from iopcare.devtools.processes import port_is_free
from tests.support.launcher import start_up

READY = b"Press Ctrl-C to stop."


def test_iopcare_up_demo_prints_the_demo_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    up = start_up(tmp_path, "--demo")
    launcher, output, ports = up.process, up.output, up.ports
    try:
        # Generous: on a shared 2-core machine the broker alone can take a minute to start.
        deadline = time.monotonic() + 300
        while READY not in output.read_bytes():
            assert launcher.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.5)
        printed = output.read_text()

        # careplan's records of the demo patient (demo_load), over gRPC.
        assert re.search(r"careplan holds CareTeam/\S+ \(active\) for Patient/", printed), printed
        assert re.search(r"careplan holds EpisodeOfCare/\S+ \(active, level of care", printed)
        assert re.search(r"careplan holds CarePlan/\S+ version \d+ \(\w+\) for Patient/", printed)
        assert "an intake PHQ-9 and the physician's first vitals and CIWA-Ar" in printed
        # The plan's events reached scheduling and notes, and theirs came back to careplan.
        sessions = re.search(r"scheduling holds (\d+) proposed sessions for Patient/", printed)
        assert sessions and int(sessions.group(1)) > 0, printed
        messages = re.search(r"notes holds (\d+) messages in the team thread", printed)
        assert messages and int(messages.group(1)) > 0, printed
        assert "careplan's holistic view of the patient (GetPatientPlan, one call):" in printed
        assert re.search(r"\n  plan: .+ \(active\)\n", printed), printed
        assert re.search(r"\n  goal: .+: latest \d+", printed), printed
        upcoming = re.search(r"(\d+) upcoming sessions, (\d+) latest team messages", printed)
        assert upcoming and int(upcoming.group(1)) > 0 and int(upcoming.group(2)) >= 2, printed

        # The therapist's safety plan for the demo patient (issue 12, part 3).
        assert re.search(
            r"notes holds the safety plan QuestionnaireResponse/\S+ \(version 1, 7 steps: "
            r"warning-signs, .+, reasons-for-living\)",
            printed,
        ), printed

        # The inpatient unit's hand-over through the FHIR gateway (demo.rest_demo).
        fhir = f"http://127.0.0.1:{ports['gateway']}/fhir"
        assert f"an inpatient unit hands a patient over: POST {fhir}/$handoff" in printed
        for created in ("Patient", "EpisodeOfCare", "CarePlan", "Appointment", "Communication"):
            assert re.search(rf"\n  created: {created}/\S+\n", printed), (created, printed)
        # The plan drawn from SUD-labelled records stays in the program (42 CFR Part 2): the
        # EHR's search returns no CarePlan and a warning that one was withheld.
        found = printed.split("&_include=CarePlan:subject\n", 1)[1].split("\nGET ", 1)[0]
        assert re.fullmatch(
            r"  warning: 1 resources withheld: labelled as needing the patient's consent .+"
            r"no active consent names this caller",
            found,
        ), found
        summary = re.search(r"/\$handoff-summary\n  IOP transfer summary: (.+)\n", printed)
        assert summary, printed
        assert {"Plan of treatment and goals", "Current medications", "Withheld"} <= set(
            summary.group(1).split(", ")
        ), summary.group(1)

        assert "all services up (logs in var/logs)" in printed
        assert "Traceback" not in printed, printed

        # Ctrl-C: the launcher stops everything and exits 0, the ports free again.
        stopped_at = time.monotonic()
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(15) == 0, output.read_text()
        while not all(port_is_free(port) for port in ports.values()):
            assert time.monotonic() - stopped_at < 15, {
                name: port for name, port in ports.items() if not port_is_free(port)
            }
            time.sleep(0.1)
        assert "stopping ..." in output.read_text()
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
