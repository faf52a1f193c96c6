"""Creates one patient, care team and draft CarePlan on a FHIR server, identically on iopcare and
on the HAPI anchor, and writes the CarePlan body that the load test POSTs.
usage: setup_bodies.py BASE_URL TOKEN_OR_EMPTY iopcare|hapi OUT_DIR [TEAM_TOKEN]
(prints the ids as JSON). On iopcare a first care team is enrolled by an administrator or the
patient's case manager: TEAM_TOKEN (an admin's) creates it; TOKEN everything else.
On HAPI every referenced Practitioner and Goal is created first with the same id (HAPI checks
references); on iopcare the registry and the care team are created as a client would."""

import json
import re
import sys
import urllib.request
import uuid
from pathlib import Path

base, token, mode, out = sys.argv[1:5]
data = Path(__file__).parent / "data"
headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
if token:
    headers["Authorization"] = f"Bearer {token}"


team_headers = dict(headers)
if len(sys.argv) > 5 and sys.argv[5]:
    team_headers["Authorization"] = f"Bearer {sys.argv[5]}"


def call(method, path, body, with_headers=None):
    req = urllib.request.Request(
        base + path, json.dumps(body).encode(), with_headers or headers, method=method
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def refs(body, types):
    return sorted(
        set(re.findall('"reference": "((?:' + "|".join(types) + ')/[^"]+)"', json.dumps(body)))
    )


tag = uuid.uuid4().hex[:8]
patient = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:anchor", "value": tag}],
    "name": [{"family": "Anchor", "given": ["Pat"]}],
    "gender": "female",
    "birthDate": "1980-01-01",
}
team_text = (data / "careteam.json").read_text()
plan_text = (data / "careplan.json").read_text()
if mode == "hapi":
    pid, tid = f"p-{tag}", f"t-{tag}"
    call("PUT", f"/Patient/{pid}", {**patient, "id": pid})
    team = json.loads(team_text.replace("PATIENT_ID", pid))
    plan = json.loads(plan_text.replace("PATIENT_ID", pid).replace("TEAM_ID", tid))
    for ref in refs(team, ["Practitioner"]) + refs(plan, ["Practitioner", "Goal"]):
        rt, i = ref.split("/")
        body = {"resourceType": rt, "id": i}
        if rt == "Goal":
            body |= {
                "lifecycleStatus": "active",
                "description": {"text": "goal"},
                "subject": {"reference": f"Patient/{pid}"},
            }
        call("PUT", f"/{rt}/{i}", body)
    call("PUT", f"/CareTeam/{tid}", {**team, "id": tid})
else:
    pid = call("POST", "/Patient", patient)["id"]
    team = json.loads(team_text.replace("PATIENT_ID", pid))
    tid = call("POST", "/CareTeam", team, team_headers)["id"]
    plan = json.loads(plan_text.replace("PATIENT_ID", pid).replace("TEAM_ID", tid))
plan_id = call("POST", "/CarePlan", plan)["id"]
Path(out, f"careplan-{mode}.json").write_text(json.dumps(plan))
print(json.dumps({"patient": pid, "team": tid, "plan": plan_id}))
