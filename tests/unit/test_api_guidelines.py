"""The gRPC contracts against the API guidelines (issue 11) and against the released API.

- careplan's API: every List RPC pages (page_size, page_token, next_page_token), every mutating
  RPC takes a request_id, every Update RPC an update_mask, dates are google.type.Date, and one
  RPC family reads past versions.
- Every service: the protos stay wire- and source-compatible with `protos/released.binpb`, the
  image of the released API (`make proto-release` rebuilds it when a release is cut). `make lint`
  runs `buf breaking` against the same image; this test is the same rule without buf, on the
  generated modules (which tests/unit/test_proto_drift.py keeps equal to the protos).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor, ServiceDescriptor

from iopcare.careplan.v1 import careplan_service_pb2 as careplan_pb
from iopcare.notes.v1 import notes_service_pb2 as notes_pb
from iopcare.scheduling.v1 import scheduling_service_pb2 as scheduling_pb

pytestmark = pytest.mark.unit

RELEASED = Path(__file__).resolve().parents[2] / "protos" / "released.binpb"
CAREPLAN: ServiceDescriptor = careplan_pb.DESCRIPTOR.services_by_name["CarePlanService"]
READS = ("Get", "List", "Find")


def test_every_careplan_list_rpc_pages() -> None:
    lists = [m for m in CAREPLAN.methods if m.name.startswith("List")]
    # + nutrition, family, medications (2), coverage, authorizations
    assert len(lists) == 12
    for method in lists:
        request, response = method.input_type.fields_by_name, method.output_type.fields_by_name
        assert request["page_size"].type == FieldDescriptor.TYPE_INT32, method.name
        assert request["page_token"].type == FieldDescriptor.TYPE_STRING, method.name
        assert response["next_page_token"].type == FieldDescriptor.TYPE_STRING, method.name


def test_every_mutating_careplan_rpc_takes_a_request_id_and_every_update_a_mask() -> None:
    for method in CAREPLAN.methods:
        fields = method.input_type.fields_by_name
        if method.name.startswith(READS):
            assert "request_id" not in fields, method.name
            continue
        assert fields["request_id"].type == FieldDescriptor.TYPE_STRING, method.name
        if method.name.startswith("Update"):
            mask = fields["update_mask"]
            assert mask.message_type.full_name == "google.protobuf.FieldMask", method.name


def test_careplan_dates_are_google_type_dates_and_versions_are_read_one_way() -> None:
    for message in careplan_pb.DESCRIPTOR.message_types_by_name.values():
        for field in message.fields:
            if field.name.endswith(("_on", "_date")):
                assert field.message_type is not None, f"{message.name}.{field.name}"
                assert field.message_type.full_name == "google.type.Date"
    version_rpcs = {m.name for m in CAREPLAN.methods if "Version" in m.name}
    assert version_rpcs == {"GetResourceVersion", "ListResourceVersions"}


def _released() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    image = descriptor_pb2.FileDescriptorSet()
    image.ParseFromString(RELEASED.read_bytes())
    return {f.name: f for f in image.file if f.name.startswith("iopcare/")}


def _current() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    files = {}
    for module in (careplan_pb, notes_pb, scheduling_pb):
        proto = descriptor_pb2.FileDescriptorProto()
        proto.ParseFromString(module.DESCRIPTOR.serialized_pb)
        files[proto.name] = proto
    return files


def _messages(
    prefix: str, messages: list[descriptor_pb2.DescriptorProto]
) -> dict[str, descriptor_pb2.DescriptorProto]:
    found = {}
    for message in messages:
        name = f"{prefix}.{message.name}"
        found[name] = message
        found.update(_messages(name, list(message.nested_type)))
    return found


def breaking_changes(
    released: dict[str, descriptor_pb2.FileDescriptorProto],
    current: dict[str, descriptor_pb2.FileDescriptorProto],
) -> list[str]:
    """What a client built against `released` would find broken in `current`: a file, message,
    field, enum value, service or RPC gone, or a field or RPC whose name, type, label or
    streaming changed (the core of buf's FILE rules)."""
    problems = []
    for name, old in released.items():
        new = current.get(name)
        if new is None:
            problems.append(f"file {name} deleted")
            continue
        if old.package != new.package:
            problems.append(f"{name}: package changed")
        old_messages = _messages(old.package, list(old.message_type))
        new_messages = _messages(new.package, list(new.message_type))
        for message_name, message in old_messages.items():
            if message_name not in new_messages:
                problems.append(f"message {message_name} deleted")
                continue
            fields = {f.number: f for f in new_messages[message_name].field}
            for field in message.field:
                now = fields.get(field.number)
                where = f"{message_name} field {field.number} ({field.name})"
                if now is None:
                    problems.append(f"{where} deleted")
                elif (now.name, now.type, now.type_name, now.label) != (
                    field.name,
                    field.type,
                    field.type_name,
                    field.label,
                ):
                    problems.append(f"{where} changed")
        new_enums = {e.name: e for e in new.enum_type}
        for enum in old.enum_type:
            values = (
                {v.number: v.name for v in new_enums[enum.name].value}
                if (enum.name in new_enums)
                else {}
            )
            for value in enum.value:
                if values.get(value.number) != value.name:
                    problems.append(f"enum {enum.name} value {value.name} deleted or renamed")
        new_services = {s.name: s for s in new.service}
        for service in old.service:
            if service.name not in new_services:
                problems.append(f"service {service.name} deleted")
                continue
            methods = {m.name: m for m in new_services[service.name].method}
            for method in service.method:
                now_method = methods.get(method.name)
                if now_method is None:
                    problems.append(f"rpc {service.name}.{method.name} deleted")
                elif (
                    now_method.input_type,
                    now_method.output_type,
                    now_method.client_streaming,
                    now_method.server_streaming,
                ) != (
                    method.input_type,
                    method.output_type,
                    method.client_streaming,
                    method.server_streaming,
                ):
                    problems.append(f"rpc {service.name}.{method.name} changed")
    return problems


def test_the_protos_make_no_breaking_change_to_the_released_api() -> None:
    problems = breaking_changes(_released(), _current())
    assert not problems, (
        "breaking changes against protos/released.binpb (intended in a release? record them in "
        "CHANGELOG.md and run `make proto-release`): " + "; ".join(problems)
    )


def test_the_check_sees_a_deleted_rpc_and_a_retyped_field() -> None:
    released = _current()
    current = {name: type(f)() for name, f in released.items()}
    for name, proto in released.items():
        current[name].CopyFrom(proto)
    careplan = current[careplan_pb.DESCRIPTOR.name]
    del careplan.service[0].method[0]
    message = next(m for m in careplan.message_type if m.name == "GetCarePlanRequest")
    message.field[0].type = descriptor_pb2.FieldDescriptorProto.TYPE_INT64
    problems = breaking_changes(released, current)
    assert "rpc CarePlanService.CreateCarePlan deleted" in problems
    assert "iopcare.careplan.v1.GetCarePlanRequest field 1 (id) changed" in problems
    assert breaking_changes(released, released) == []
