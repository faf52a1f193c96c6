"""gRPC servicer methods as table rows.

Most RPCs of the three services do the same three things: read the request, call one use case
with the caller (`current_principal()`), build the response. The helpers here write such an RPC
as one class attribute, for example::

    GetCarePlan = gets(lambda s: s.plans.get, pb.GetCarePlanResponse, "care_plan", to_message)

`lambda s: s.plans.get` picks the use case off the servicer instance (its use cases are set in
`__init__`). The handler is a plain function, so gRPC binds it like a method. Errors are not
handled here: they propagate to the interceptors (`kit.rpc`), which map them to status codes,
details and audit records exactly as for a hand-written method.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc

from iopcare.kit.auth import Principal, current_principal
from iopcare.kit.protoconv import require_id

#: A servicer method: (servicer, request, context) -> response.
Handler = Callable[[Any, Any, grpc.ServicerContext], Any]
#: Picks the bound use case off a servicer instance.
UseCase = Callable[[Any], Callable[..., Any]]
#: Turns a stored item into its message.
Render = Callable[[Any], Any]


def versioned(request: Any) -> tuple[Principal, str, int]:
    """The caller, the request's `id` (checked) and its `expected_version`: how the arguments of
    a change to one stored version begin."""
    return current_principal(), require_id(request.id, "id"), request.expected_version


def rpc(call: Callable[[Any, Any], Any], respond: Callable[[Any], Any]) -> Handler:
    """A handler that runs `call(servicer, request)` and answers `respond(result)`."""

    def handler(servicer: Any, request: Any, context: grpc.ServicerContext) -> Any:
        return respond(call(servicer, request))

    return handler


def one(response: Callable[..., Any], field: str, render: Render) -> Callable[[Any], Any]:
    """A response holding one rendered item in `field`."""
    return lambda item: response(**{field: render(item)})


def page(response: Callable[..., Any], field: str, render: Render) -> Callable[[Any], Any]:
    """A response holding a page of rendered items in `field` and its `next_page_token`; the
    page is `(items, token)` or an object with `items` and `next_page_token`."""

    def respond(found: Any) -> Any:
        items: Sequence[Any]
        token: str
        if isinstance(found, tuple):
            items, token = found
        else:
            items, token = found.items, found.next_page_token
        return response(**{field: [render(item) for item in items], "next_page_token": token})

    return respond


def creates(use_case: UseCase, response: Callable[..., Any], field: str, render: Render) -> Handler:
    """`use_case(principal, request_id, fhir_json)`, answered with the one item it stored."""
    return rpc(
        lambda s, r: use_case(s)(current_principal(), r.request_id, r.fhir_json),
        one(response, field, render),
    )


def gets(
    use_case: UseCase,
    response: Callable[..., Any],
    field: str,
    render: Render,
    id_field: str = "id",
) -> Handler:
    """`use_case(principal, <id>)` with the request's `id_field` checked as an id (a bad one is
    INVALID_ARGUMENT naming that field), answered with the one item found."""
    return reads(use_case, one(response, field, render), id_field)


def reads(use_case: UseCase, respond: Callable[[Any], Any], id_field: str = "id") -> Handler:
    """As `gets`, answered with `respond(found)`: a response of more than the one item (a view
    of it with what goes with it)."""
    return rpc(
        lambda s, r: use_case(s)(current_principal(), require_id(getattr(r, id_field), id_field)),
        respond,
    )


def lists(use_case: UseCase, response: Callable[..., Any], field: str, render: Render) -> Handler:
    """`use_case(principal, patient_id, page_size, page_token)`, answered with the page."""
    return rpc(
        lambda s, r: use_case(s)(
            current_principal(),
            require_id(r.patient_id, "patient_id"),
            r.page_size,
            r.page_token,
        ),
        page(response, field, render),
    )
