"""Questionnaire and QuestionnaireResponse over REST: two forms the program publishes, answered in
two services.

- The patient's daily check-in (`resources/checkin.py`, issue 12 part 4): answers kept by
  scheduling (created and searched; no read by id).
- The Stanley-Brown safety plan (`resources/safety_plans.py`, issue 12 part 3): kept by notes,
  one per patient, versioned (read, vread, history, create, update, search).

FHIR has one QuestionnaireResponse type, so one handler serves both and sends each request to the
service that keeps its form: a create by its `questionnaire` canonical, a search by the
`questionnaire` parameter (both forms' answers when it is absent), and reads and updates by id to
the safety plans (check-ins are searched, never read by id).
"""

from __future__ import annotations

from typing import Any

import iopcare.notes.contract as notes_contract
import iopcare.scheduling.contract as scheduling_contract
from iopcare.gateway.client import Caller, Services
from iopcare.gateway.errors import http_error
from iopcare.gateway.resources import checkin, safety_plans
from iopcare.gateway.resources.base import Change, Created, Found, ResourceHandler

CHECK_IN = str(scheduling_contract.QUESTIONNAIRE_URL)
SAFETY_PLAN = str(notes_contract.SAFETY_PLAN_QUESTIONNAIRE)


class QuestionnaireHandler(ResourceHandler):
    type = "Questionnaire"
    service = "notes"
    compartment = False
    reads_old_versions = False
    documentation = (
        "The forms the program publishes: the daily check-in "
        f"(Questionnaire/{checkin.QUESTIONNAIRE_ID}) and the Stanley-Brown safety plan "
        f"(Questionnaire/{notes_contract.SAFETY_PLAN_QUESTIONNAIRE_ID})."
    )

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.check_in = checkin.QuestionnaireHandler(services)
        self.safety_plan = safety_plans.QuestionnaireHandler(services)

    def read(self, caller: Caller, resource_id: str) -> Found:
        if resource_id == checkin.QUESTIONNAIRE_ID:
            return self.check_in.read(caller, resource_id)
        return self.safety_plan.read(caller, resource_id)


class QuestionnaireResponseHandler(ResourceHandler):
    type = "QuestionnaireResponse"
    # A transaction entry is refused when its writes span services; a create of either form is
    # one write, so the owner named here only matters for that check.
    service = "notes"
    params = safety_plans.QuestionnaireResponseHandler.params
    documentation = (
        "Answers to the program's two forms. The patient's daily check-in "
        f"(questionnaire {CHECK_IN}): {checkin.QuestionnaireResponseHandler.documentation} "
        f"The safety plan (questionnaire {SAFETY_PLAN}): "
        f"{safety_plans.QuestionnaireResponseHandler.documentation} A create goes by its "
        "`questionnaire`; read, vread, history and update serve safety plans; search returns "
        "both forms' answers unless `questionnaire` names one."
    )

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.check_in = checkin.QuestionnaireResponseHandler(services)
        self.safety_plan = safety_plans.QuestionnaireResponseHandler(services)

    def _form(self, questionnaire: object) -> ResourceHandler:
        # A canonical may carry its version (`url|version`).
        url = str(questionnaire or "").split("|")[0]
        if url == CHECK_IN:
            return self.check_in
        if url == SAFETY_PLAN:
            return self.safety_plan
        raise http_error(
            422,
            "not-supported",
            f"QuestionnaireResponse.questionnaire must be {CHECK_IN} (the daily check-in) or "
            f"{SAFETY_PLAN} (the safety plan)",
            "QuestionnaireResponse.questionnaire",
        )

    def read(self, caller: Caller, resource_id: str) -> Found:
        return self.safety_plan.read(caller, resource_id)

    def vread(self, caller: Caller, resource_id: str, version: int) -> Found:
        return self.safety_plan.vread(caller, resource_id, version)

    def history(self, caller: Caller, resource_id: str) -> list[Found]:
        return self.safety_plan.history(caller, resource_id)

    def create(self, caller: Caller, resource: dict[str, Any], request_id: str) -> Created:
        return self._form(resource.get("questionnaire")).create(caller, resource, request_id)

    def update(self, caller: Caller, change: Change) -> Found:
        questionnaire = change.resource.get("questionnaire")
        if str(questionnaire or "").split("|")[0] != SAFETY_PLAN:
            self._form(questionnaire)  # 422 for an unknown form
            raise http_error(
                405,
                "not-supported",
                "a daily check-in is recorded once and never updated",
                "QuestionnaireResponse.questionnaire",
            )
        return self.safety_plan.update(caller, change)

    def search(self, caller: Caller, patient_id: str | None, query: dict[str, str]) -> list[Found]:
        wanted = query.get("questionnaire")
        if wanted:
            return self._form(wanted).search(caller, patient_id, query)
        return [
            *self.safety_plan.search(caller, patient_id, query),
            *self.check_in.search(caller, patient_id, query),
        ]
