"""The gRPC edge of the notes service: requests to use cases, results to messages."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from iopcare.kit.auth import current_principal
from iopcare.kit.copying import by_name
from iopcare.kit.errors import FieldViolation, InvalidArgument
from iopcare.kit.paging import encode
from iopcare.kit.protoconv import require_id, timestamp
from iopcare.kit.servicer import gets, lists, one, reads, rpc, versioned
from iopcare.kit.versioned import Stored
from iopcare.notes.clinical import Attendee, ClinicalNotes, NoteChanges
from iopcare.notes.consents import ConsentInput, Consents
from iopcare.notes.crisis import Crisis
from iopcare.notes.disclosure import Disclosure
from iopcare.notes.domain.documents import KIND_BY_CODE, NOTE_KINDS, NoteDraft
from iopcare.notes.domain.messages import NewMessage
from iopcare.notes.domain.oncall import Shift
from iopcare.notes.drafts import Drafts
from iopcare.notes.imported import ImportedDocument, import_document, reference_only
from iopcare.notes.inbox import Inbox
from iopcare.notes.note_search import NoteFilter, NoteSearch
from iopcare.notes.oncall import OnCall, Roster
from iopcare.notes.safety_plans import PlanView, SafetyPlans, questionnaire_json
from iopcare.notes.store import StoredConsent, StoredDraft, StoredMessage, StoredNote
from iopcare.notes.store.safety_plans import Review
from iopcare.notes.thread import Thread
from iopcare.notes.v1 import notes_service_pb2 as pb
from iopcare.notes.v1 import notes_service_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["NotesService"].full_name

#: Initial metadata of a WatchThread stream: the resume token of the position it starts after.
WATCH_START_HEADER = "iopcare-watch-start"

#: Fields UpdateNote may set (its update mask).
NOTE_MASK_FIELDS = frozenset({"title", "text", "confidentiality", "sensitivity", "shared_with"})


def to_message(m: StoredMessage) -> pb.Message:
    return pb.Message(
        **by_name(m, "id patient_id sender text priority category status version"),
        sent_time=timestamp(m.sent_at),
        fhir_json=m.resource,
    )


def to_draft(d: StoredDraft) -> pb.MessageDraft:
    return pb.MessageDraft(
        **by_name(d, "id patient_id version"),
        # The body holds the fields of the message but its patient (drafts._body).
        message=pb.PostMessageRequest(patient_id=d.patient_id, **d.body),
        update_time=timestamp(d.updated_at),
    )


def to_note(n: StoredNote) -> pb.Note:
    return pb.Note(
        **by_name(
            n, "id version patient_id kind author status title text shared_text confidentiality"
        ),
        **by_name(n, "group_id relates_to relation relation_reason signed_by", none_as=""),
        type_code=NOTE_KINDS[n.kind][0],
        sensitivity=sorted(n.sensitivity),
        shared_with=sorted(n.shared_with),
        create_time=timestamp(n.created_at),
        sign_time=timestamp(n.signed_at) if n.signed_at else None,
        fhir_json=n.resource,
    )


def to_consent(c: StoredConsent) -> pb.Consent:
    return pb.Consent(
        **by_name(c, "id patient_id recipient scope status version"), fhir_json=c.resource
    )


def _time(message: object, field: str) -> datetime | None:
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    value: Timestamp = getattr(message, field)
    try:
        return value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument(
            f"{field} is out of range", [FieldViolation(field, "a time between years 1 and 9999")]
        ) from None


def _draft(note: pb.NoteInput, patient_id: str) -> NoteDraft:
    return NoteDraft(
        patient_id=patient_id,
        **by_name(note, "kind title text shared_text"),
        confidentiality=note.confidentiality or "N",
        sensitivity=frozenset(note.sensitivity),
        shared_with=frozenset(note.shared_with),
    )


def _consent(request: pb.RecordConsentRequest) -> ConsentInput:
    return ConsentInput(
        **by_name(request, "recipient recipient_display signed_document"),
        scope=request.scope or "all",
        recipient_type=request.recipient_type or "Organization",
        period_start=_time(request, "start_time"),
        period_end=_time(request, "end_time"),
        signed_at=_time(request, "signed_time"),
    )


def _shift(shift: pb.OnCallShift, index: int) -> Shift:
    where = f"shifts[{index}]"
    starts, ends = _time(shift, "start_time"), _time(shift, "end_time")
    if starts is None or ends is None:
        raise InvalidArgument(
            "every shift has a start and an end",
            [
                FieldViolation(f"{where}.start_time", "required"),
                FieldViolation(f"{where}.end_time", "required"),
            ],
        )
    return Shift(starts, ends, tuple(shift.clinicians))


def to_roster(roster: Roster) -> pb.OnCallRoster:
    return pb.OnCallRoster(
        version=roster.version,
        shifts=[
            pb.OnCallShift(
                start_time=timestamp(s.starts), end_time=timestamp(s.ends), clinicians=s.clinicians
            )
            for s in roster.shifts
        ],
        update_time=timestamp(roster.updated_at) if roster.updated_at else None,
        updated_by=roster.updated_by,
    )


def to_safety_plan(plan: Stored) -> pb.SafetyPlan:
    return pb.SafetyPlan(
        **by_name(plan, "id version patient_id status"),
        update_time=timestamp(plan.updated_at),
        fhir_json=plan.resource,
    )


def to_review(review: Review) -> pb.SafetyPlanReview:
    return pb.SafetyPlanReview(
        **by_name(review, "id patient_id reason crises"),
        flag_id=review.flag_id or "",
        due_time=timestamp(review.due_since),
    )


def _patient_plan(view: PlanView) -> pb.GetPatientSafetyPlanResponse:
    return pb.GetPatientSafetyPlanResponse(
        plan=to_safety_plan(view.plan) if view.plan else None,
        review=to_review(view.review) if view.review else None,
    )


def flag_message(flag: Stored) -> pb.Flag:
    return pb.Flag(**by_name(flag, "id version patient_id status"), fhir_json=flag.resource)


@dataclass(frozen=True)
class UseCases:
    """The notes service's use cases, one object per aggregate (built by `app`)."""

    thread: Thread
    drafts: Drafts
    crisis: Crisis
    clinical: ClinicalNotes
    search: NoteSearch
    consents: Consents
    disclosure: Disclosure
    oncall: OnCall
    inbox: Inbox
    safety_plans: SafetyPlans


class NotesServicer(pb_grpc.NotesServiceServicer):
    def __init__(self, cases: UseCases) -> None:
        self.cases = cases

    # Team thread -------------------------------------------------------------------------------
    def PostMessage(
        self, request: pb.PostMessageRequest, context: grpc.ServicerContext
    ) -> pb.PostMessageResponse:
        stored = self.cases.thread.post(
            current_principal(),
            request.request_id,
            require_id(request.patient_id, "patient_id"),
            request.text,
            request.priority,
            category=request.category,
            recipients=tuple(request.recipients),
            in_response_to=(
                require_id(request.in_response_to, "in_response_to")
                if request.in_response_to
                else ""
            ),
            part_of=tuple(request.part_of),
            about=tuple(request.about),
            attachments=tuple(request.attachments),
        )
        return pb.PostMessageResponse(message=to_message(stored))

    ListThread = lists(lambda s: s.cases.thread.page, pb.ListThreadResponse, "messages", to_message)

    GetCommunication = reads(
        lambda s: s.cases.thread.get_message,
        lambda view: pb.GetCommunicationResponse(
            message=to_message(view.message),
            receipts=[pb.ReadReceipt(reader=r, read_time=timestamp(t)) for r, t in view.receipts],
        ),
    )

    RetractMessage = rpc(
        lambda s, r: s.cases.thread.retract(*versioned(r), r.request_id),
        one(pb.RetractMessageResponse, "message", to_message),
    )

    def MarkRead(
        self, request: pb.MarkReadRequest, context: grpc.ServicerContext
    ) -> pb.MarkReadResponse:
        ids = [require_id(m, f"message_ids[{i}]") for i, m in enumerate(request.message_ids)]
        new = self.cases.thread.mark_read(current_principal(), ids, request.request_id)
        return pb.MarkReadResponse(new_receipts=new)

    def SaveMessageDraft(
        self, request: pb.SaveMessageDraftRequest, context: grpc.ServicerContext
    ) -> pb.SaveMessageDraftResponse:
        m = request.message
        patient_id = require_id(m.patient_id, "message.patient_id")
        draft_id = require_id(request.draft_id, "draft_id") if request.draft_id else ""
        saved = self.cases.drafts.save(
            current_principal(),
            patient_id,
            draft_id,
            request.expected_version,
            NewMessage(
                patient_id=patient_id,
                text=m.text,
                priority=m.priority or "routine",
                category=m.category or "update",
                sender=current_principal().reference,
                about=tuple(m.about),
                recipients=tuple(m.recipients),
                in_response_to=m.in_response_to or None,
                part_of=tuple(m.part_of),
                attachments=tuple(m.attachments),
            ),
            request.request_id,
        )
        return pb.SaveMessageDraftResponse(draft=to_draft(saved))

    ListMessageDrafts = lists(
        lambda s: s.cases.drafts.page, pb.ListMessageDraftsResponse, "drafts", to_draft
    )
    SendMessageDraft = rpc(
        lambda s, r: s.cases.drafts.send(
            current_principal(), r.request_id, require_id(r.draft_id, "draft_id")
        ),
        one(pb.SendMessageDraftResponse, "message", to_message),
    )

    def DiscardMessageDraft(
        self, request: pb.DiscardMessageDraftRequest, context: grpc.ServicerContext
    ) -> pb.DiscardMessageDraftResponse:
        self.cases.drafts.discard(
            current_principal(), require_id(request.draft_id, "draft_id"), request.request_id
        )
        return pb.DiscardMessageDraftResponse()

    def WatchThread(
        self, request: pb.WatchThreadRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchThreadResponse]:
        principal = current_principal()
        if request.addressed_to_me and not request.patient_id:
            yield from self._watch_inbox(request, context)
            return
        patient_id = require_id(request.patient_id, "patient_id")
        with self.cases.thread.watching(principal, patient_id, request.resume_token) as cursor:
            # Initial metadata tells the client the stream is open: everything committed from
            # now on reaches it (and the token names where it started, for resuming).
            context.send_initial_metadata(((WATCH_START_HEADER, encode({"seq": cursor})),))
            # A cancelled call wakes its stream at once instead of at the next re-read.
            context.add_callback(self.cases.thread.watchers.wake_all)
            for message, token in self.cases.thread.follow(
                principal, patient_id, cursor, context.is_active
            ):
                yield pb.WatchThreadResponse(message=to_message(message), resume_token=token)

    def _watch_inbox(
        self, request: pb.WatchThreadRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchThreadResponse]:
        """WatchThread with `addressed_to_me`: the caller's messages in every thread."""
        principal = current_principal()
        with self.cases.inbox.watching(principal, request.resume_token) as cursor:
            context.send_initial_metadata(((WATCH_START_HEADER, encode({"seq": cursor})),))
            context.add_callback(self.cases.thread.watchers.wake_all)
            for message, token in self.cases.inbox.follow(principal, cursor, context.is_active):
                yield pb.WatchThreadResponse(message=to_message(message), resume_token=token)

    # On-call roster ----------------------------------------------------------------------------
    def SetOnCallRoster(
        self, request: pb.SetOnCallRosterRequest, context: grpc.ServicerContext
    ) -> pb.SetOnCallRosterResponse:
        shifts = [_shift(shift, i) for i, shift in enumerate(request.shifts)]
        roster = self.cases.oncall.set(current_principal(), request.request_id, shifts)
        return pb.SetOnCallRosterResponse(roster=to_roster(roster))

    def GetOnCallRoster(
        self, request: pb.GetOnCallRosterRequest, context: grpc.ServicerContext
    ) -> pb.GetOnCallRosterResponse:
        roster, order, open_now = self.cases.oncall.get(
            current_principal(), _time(request, "at_time")
        )
        return pb.GetOnCallRosterResponse(
            roster=to_roster(roster), on_call=list(order), in_program_hours=open_now
        )

    def ImportDocument(
        self, request: pb.ImportDocumentRequest, context: grpc.ServicerContext
    ) -> pb.ImportDocumentResponse:
        patient_id = require_id(request.note.patient_id, "note.patient_id")
        document = ImportedDocument(
            _draft(request.note, patient_id),
            **by_name(request, "episode_id author author_display source_identifier"),
            written_at=_time(request, "document_time"),
        )
        note = import_document(
            self.cases.clinical, current_principal(), request.request_id, document
        )
        return pb.ImportDocumentResponse(
            id=note.id,
            version=note.version,
            fhir_json=reference_only(note.resource),
        )

    # Crisis flags ------------------------------------------------------------------------------
    AcknowledgeCrisis = rpc(
        lambda s, r: s.cases.crisis.acknowledge(
            current_principal(), require_id(r.flag_id, "flag_id"), r.note, r.request_id
        ),
        one(pb.AcknowledgeCrisisResponse, "flag", flag_message),
    )
    ListFlags = lists(
        lambda s: s.cases.crisis.flags_for_patient, pb.ListFlagsResponse, "flags", flag_message
    )

    # Clinical notes ----------------------------------------------------------------------------
    def CreateNote(
        self, request: pb.CreateNoteRequest, context: grpc.ServicerContext
    ) -> pb.CreateNoteResponse:
        attendees = [
            Attendee(require_id(a.patient_id, f"attendees[{i}].patient_id"), a.text)
            for i, a in enumerate(request.attendees)
        ]
        if attendees:
            patient_id = attendees[0].patient_id
        else:
            patient_id = require_id(request.note.patient_id, "note.patient_id")
        notes = self.cases.clinical.create(
            current_principal(), request.request_id, _draft(request.note, patient_id), attendees
        )
        return pb.CreateNoteResponse(notes=[to_note(n) for n in notes])

    def UpdateNote(
        self, request: pb.UpdateNoteRequest, context: grpc.ServicerContext
    ) -> pb.UpdateNoteResponse:
        paths = list(request.update_mask.paths)
        unknown = [p for p in paths if p not in NOTE_MASK_FIELDS]
        if not paths or unknown:
            raise InvalidArgument(
                "update_mask must name the fields to set",
                [FieldViolation("update_mask", f"some of {', '.join(sorted(NOTE_MASK_FIELDS))}")],
            )
        # The masked fields as a new draft would read them (confidentiality "N" when unset).
        changes = NoteChanges(**by_name(_draft(request.note, ""), " ".join(paths)))
        updated = self.cases.clinical.update_draft(
            current_principal(),
            require_id(request.id, "id"),
            request.expected_version,
            changes,
            request.request_id,
        )
        return pb.UpdateNoteResponse(note=to_note(updated))

    def SignNote(
        self, request: pb.SignNoteRequest, context: grpc.ServicerContext
    ) -> pb.SignNoteResponse:
        view = self.cases.clinical.sign(*versioned(request), request.request_id)
        return pb.SignNoteResponse(
            note=to_note(view.note), provenance_json=view.provenance[-1] if view.provenance else ""
        )

    AmendNote = rpc(
        lambda s, r: s.cases.clinical.amend(
            current_principal(),
            r.request_id,
            require_id(r.id, "id"),
            **by_name(r, "relation reason text title"),
        ),
        one(pb.AmendNoteResponse, "note", to_note),
    )

    GetNote = reads(
        lambda s: s.cases.clinical.get,
        lambda view: pb.GetNoteResponse(
            note=to_note(view.note),
            related_ids=view.related,
            provenance_json=view.provenance,
            break_glass=view.flagged,
        ),
    )

    def SearchNotes(
        self, request: pb.SearchNotesRequest, context: grpc.ServicerContext
    ) -> pb.SearchNotesResponse:
        kinds = list(request.kinds)
        for i, code in enumerate(request.type_codes):
            if code not in KIND_BY_CODE:
                raise InvalidArgument(
                    "unknown note type",
                    [FieldViolation(f"type_codes[{i}]", f"one of {', '.join(KIND_BY_CODE)}")],
                )
            kinds.append(KIND_BY_CODE[code])
        found, token = self.cases.search.search(
            current_principal(),
            require_id(request.patient_id, "patient_id"),
            NoteFilter(
                author=request.author,
                kinds=tuple(dict.fromkeys(kinds)),
                since=_time(request, "date_from"),
                until=_time(request, "date_to"),
                words=request.text,
            ),
            page_size=request.page_size,
            page_token=request.page_token,
            recipient=request.recipient,
        )
        return pb.SearchNotesResponse(notes=[to_note(n) for n in found], next_page_token=token)

    def DiscloseNote(
        self, request: pb.DiscloseNoteRequest, context: grpc.ServicerContext
    ) -> pb.DiscloseNoteResponse:
        body = self.cases.disclosure.disclose(
            current_principal(), require_id(request.id, "id"), request.recipient
        )
        return pb.DiscloseNoteResponse(fhir_json=body)

    # Consents ----------------------------------------------------------------------------------
    RecordConsent = rpc(
        lambda s, r: s.cases.consents.record_consent(
            current_principal(), r.request_id, require_id(r.patient_id, "patient_id"), _consent(r)
        ),
        one(pb.RecordConsentResponse, "consent", to_consent),
    )

    GetConsent = gets(
        lambda s: s.cases.consents.get_consent, pb.GetConsentResponse, "consent", to_consent
    )
    RevokeConsent = rpc(
        lambda s, r: s.cases.consents.revoke_consent(
            current_principal(), require_id(r.id, "id"), r.request_id
        ),
        one(pb.RevokeConsentResponse, "consent", to_consent),
    )
    ListConsents = lists(
        lambda s: s.cases.consents.page, pb.ListConsentsResponse, "consents", to_consent
    )

    # Safety plans ------------------------------------------------------------------------------
    def GetSafetyPlanQuestionnaire(
        self, request: pb.GetSafetyPlanQuestionnaireRequest, context: grpc.ServicerContext
    ) -> pb.GetSafetyPlanQuestionnaireResponse:
        current_principal()  # any authenticated caller: the Questionnaire holds no patient data
        return pb.GetSafetyPlanQuestionnaireResponse(fhir_json=questionnaire_json())

    SaveSafetyPlan = rpc(
        lambda s, r: s.cases.safety_plans.save(
            current_principal(),
            r.request_id,
            require_id(r.patient_id, "patient_id"),
            r.fhir_json,
            r.expected_version,
        ),
        one(pb.SaveSafetyPlanResponse, "plan", to_safety_plan),
    )
    GetSafetyPlan = rpc(
        lambda s, r: s.cases.safety_plans.get(
            current_principal(), require_id(r.id, "id"), r.version
        ),
        one(pb.GetSafetyPlanResponse, "plan", to_safety_plan),
    )
    GetPatientSafetyPlan = reads(
        lambda s: s.cases.safety_plans.for_patient, _patient_plan, "patient_id"
    )
    ListSafetyPlanVersions = rpc(
        lambda s, r: s.cases.safety_plans.versions(current_principal(), require_id(r.id, "id")),
        lambda plans: pb.ListSafetyPlanVersionsResponse(plans=[to_safety_plan(p) for p in plans]),
    )

    def ListSafetyPlanReviews(
        self, request: pb.ListSafetyPlanReviewsRequest, context: grpc.ServicerContext
    ) -> pb.ListSafetyPlanReviewsResponse:
        patient_id = require_id(request.patient_id, "patient_id") if request.patient_id else ""
        found, token = self.cases.safety_plans.reviews_due(
            current_principal(), patient_id, request.page_size, request.page_token
        )
        return pb.ListSafetyPlanReviewsResponse(
            reviews=[to_review(r) for r in found], next_page_token=token
        )
