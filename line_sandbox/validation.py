"""Validate request bodies the way the LINE Platform does.

Two layers:

1. The vendored ``spec/messaging-api.yml`` as JSON Schema. Its polymorphic objects (message,
   template, action, flex component, recipient, ...) declare an OpenAPI ``discriminator`` on a
   base schema whose subtypes ``allOf`` the base. JSON Schema validators ignore
   ``discriminator``, so a plain validator accepts ``{"type": "text"}`` without ``text``. When the
   document is loaded, every reference to such a base (except the subtypes' own ``allOf``
   inheritance) is rewritten to a generated ``<Base>__dispatch`` schema that checks the
   discriminator value against the mapping and applies the matching subtype with ``if``/``then``.
2. LINE's documented limits that the spec does not express: text length in UTF-16 code units,
   HTTPS-only media URLs, template sizes, user-ID format, rich menu sizes.

Errors come back in LINE's shape (``ErrorResponse``/``ErrorDetail``), e.g.
``{"message": "The request body has 1 error(s)", "details": [{"message": "Length must be
between 0 and 5000", "property": "messages[0].text"}]}``.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

SPEC_DIR = Path(__file__).resolve().parent / "spec"
MESSAGING_SPEC = SPEC_DIR / "messaging-api.yml"
_SPEC_URI = "urn:line-openapi:messaging-api"
_SCHEMA_PREFIX = "#/components/schemas/"
_DISPATCH_SUFFIX = "__dispatch"

MAX_TEXT_UTF16 = 5000
MAX_MULTICAST_RECIPIENTS = 500  # the schema's maxItems for MulticastRequest.to
MAX_URL_LENGTH = 2000
USER_ID_RE = re.compile(r"^U[0-9a-f]{32}$")
PUSH_TARGET_RE = re.compile(r"^[UCR][0-9a-f]{32}$")
UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)

#: Media properties LINE accepts only as HTTPS URLs, per message type.
_HTTPS_PROPERTIES: dict[str, tuple[str, ...]] = {
    "image": ("originalContentUrl", "previewImageUrl"),
    "video": ("originalContentUrl", "previewImageUrl"),
    "audio": ("originalContentUrl",),
    "imagemap": ("baseUrl",),
}

#: Properties LINE requires on an action although the spec leaves them optional.
_ACTION_REQUIRED = {"uri": "uri", "postback": "data", "message": "text"}


@dataclass
class LineError(Exception):
    """A LINE-shaped error response: HTTP status plus ``ErrorResponse`` body."""

    status: int
    message: str
    details: list[dict[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message}
        if self.details:
            body["details"] = self.details
        body.update(self.extra)
        return body


def body_error(details: list[dict[str, str]]) -> LineError:
    return LineError(400, f"The request body has {len(details)} error(s)", details)


def utf16_length(text: str) -> int:
    """Length as LINE counts it: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def is_uuid(value: str) -> bool:
    return bool(UUID_RE.match(value))


# --- loading the spec ------------------------------------------------------------------------


def _fix_openapi(node: Any) -> Any:
    """Turn OpenAPI 3.0 schema quirks into JSON Schema (``nullable``) in place."""
    if isinstance(node, dict):
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        for value in node.values():
            _fix_openapi(value)
    elif isinstance(node, list):
        for value in node:
            _fix_openapi(value)
    return node


def _rewrite_refs(node: Any, bases: set[str], *, in_allof: bool = False) -> None:
    """Point references to discriminated bases at their dispatch schema.

    A ``$ref`` that is a direct item of ``allOf`` is a subtype inheriting the base's properties;
    it must keep the plain base (else a subtype would dispatch to itself forever).
    """
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not in_allof and ref.startswith(_SCHEMA_PREFIX):
            name = ref.removeprefix(_SCHEMA_PREFIX)
            if name in bases:
                node["$ref"] = f"{_SCHEMA_PREFIX}{name}{_DISPATCH_SUFFIX}"
        for key, value in node.items():
            if key == "allOf" and isinstance(value, list):
                for item in value:
                    _rewrite_refs(item, bases, in_allof=True)
            else:
                _rewrite_refs(value, bases)
    elif isinstance(node, list):
        for item in node:
            _rewrite_refs(item, bases)


def _dispatch_schema(base: str, discriminator: dict[str, Any]) -> dict[str, Any]:
    prop = discriminator["propertyName"]
    mapping: dict[str, str] = discriminator.get("mapping", {})
    parts: list[dict[str, Any]] = [
        {"$ref": f"{_SCHEMA_PREFIX}{base}"},
        {"properties": {prop: {"enum": list(mapping)}}},
    ]
    for value, target in mapping.items():
        parts.append(
            {
                "if": {"properties": {prop: {"const": value}}, "required": [prop]},
                "then": {"$ref": target},
            }
        )
    return {"allOf": parts}


_SPEC_LOCK = threading.Lock()


def spec_document() -> dict[str, Any]:
    """The messaging API document with discriminator dispatch added (loaded once).

    Parsing the 180 KB YAML takes about a second of CPU. Concurrent first requests (a send's
    three chunks) wait for one load instead of each parsing its own copy: three or more
    parses in parallel on a busy machine outlasted the client's timeout, the client retried,
    and the abandoned requests were answered (and recorded) only after it had moved on."""
    with _SPEC_LOCK:
        return _load_spec_document()


@cache
def _load_spec_document() -> dict[str, Any]:
    with MESSAGING_SPEC.open(encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    schemas: dict[str, Any] = doc["components"]["schemas"]
    _fix_openapi(schemas)
    bases = {name for name, schema in schemas.items() if "discriminator" in schema}
    _rewrite_refs(doc, bases)
    for name in sorted(bases):
        schemas[f"{name}{_DISPATCH_SUFFIX}"] = _dispatch_schema(
            name, schemas[name]["discriminator"]
        )
    return doc


WEBHOOK_SPEC = SPEC_DIR / "webhook.yml"
_WEBHOOK_URI = "urn:line-openapi:webhook"


@cache
def _webhook_document() -> dict[str, Any]:
    """The webhook document (events LINE posts), prepared as the messaging one is."""
    with _SPEC_LOCK, WEBHOOK_SPEC.open(encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    schemas: dict[str, Any] = doc["components"]["schemas"]
    _fix_openapi(schemas)
    bases = {name for name, schema in schemas.items() if "discriminator" in schema}
    _rewrite_refs(doc, bases)
    for name in sorted(bases):
        schemas[f"{name}{_DISPATCH_SUFFIX}"] = _dispatch_schema(
            name, schemas[name]["discriminator"]
        )
    return doc


@cache
def _webhook_validator() -> Draft7Validator:
    resource = Resource.from_contents(_webhook_document(), default_specification=DRAFT7)
    registry = Registry().with_resource(_WEBHOOK_URI, resource)
    return Draft7Validator(
        {"$ref": f"{_WEBHOOK_URI}{_SCHEMA_PREFIX}CallbackRequest"}, registry=registry
    )


def webhook_payload_errors(payload: dict[str, Any]) -> list[str]:
    """Why ``payload`` (a webhook request body) is not what LINE's webhook document says
    LINE sends; empty when it is. The sandbox checks the events it makes up for taps."""
    return [
        f"{property_path(error.absolute_path) or '(root)'}: {error.message}"
        for error in _webhook_validator().iter_errors(payload)
    ]


@cache
def _registry() -> Registry:
    resource = Resource.from_contents(spec_document(), default_specification=DRAFT7)
    return Registry().with_resource(_SPEC_URI, resource)


@cache
def validator_for(schema_name: str) -> Draft7Validator:
    """A validator for ``components/schemas/<schema_name>`` (cached per schema)."""
    if schema_name not in spec_document()["components"]["schemas"]:
        raise KeyError(schema_name)
    schema = {"$ref": f"{_SPEC_URI}{_SCHEMA_PREFIX}{schema_name}"}
    return Draft7Validator(schema, registry=_registry())


def request_schema(path: str, method: str = "post") -> str | None:
    """Name of the request-body schema the spec declares for ``path`` (``None`` if none)."""
    operation = spec_document()["paths"].get(path, {}).get(method.lower(), {})
    content = operation.get("requestBody", {}).get("content", {})
    ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
    return ref.removeprefix(_SCHEMA_PREFIX) or None


# --- turning jsonschema errors into LINE details -------------------------------------------


def property_path(parts: Iterable[str | int]) -> str:
    """``["messages", 0, "text"]`` → ``"messages[0].text"`` (LINE's notation)."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _bounds(schema: dict[str, Any], low_key: str, high_key: str) -> tuple[int, int | None]:
    return int(schema.get(low_key, 0)), schema.get(high_key)


def _details_for(error: ValidationError) -> Iterator[tuple[str, str]]:
    """Yield ``(property, message)`` pairs for one jsonschema error."""
    path = list(error.absolute_path)
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind == "required":
        instance = error.instance if isinstance(error.instance, dict) else {}
        for name in error.validator_value:
            if name not in instance:
                yield property_path([*path, name]), "must be specified"
        return
    prop = property_path(path)
    if kind in ("minItems", "maxItems"):
        low, high = _bounds(schema, "minItems", "maxItems")
        if high is None:
            yield prop, f"Size must be at least {low}"
        else:
            yield prop, f"Size must be between {low} and {high}"
    elif kind in ("minLength", "maxLength"):
        low, high = _bounds(schema, "minLength", "maxLength")
        if high is None:
            yield prop, "May not be empty" if low == 1 else f"Length must be at least {low}"
        else:
            yield prop, f"Length must be between {low} and {high}"
    elif kind in ("enum", "const"):
        values = error.validator_value if kind == "enum" else [error.validator_value]
        yield prop, f"Must be one of the following values: [{', '.join(map(str, values))}]"
    elif kind == "minimum":
        yield prop, f"Must be greater than or equal to {error.validator_value}"
    elif kind == "maximum":
        yield prop, f"Must be less than or equal to {error.validator_value}"
    elif kind == "pattern":
        yield prop, f'must match "{error.validator_value}"'
    else:
        yield prop, error.message


def schema_details(schema_name: str, body: Any) -> list[dict[str, str]]:
    """Validate ``body`` against a spec schema; LINE-style details (deduplicated, in order).

    Raises ``LineError`` directly for a type mismatch, which LINE reports as an unreadable
    property rather than as a list of details.
    """
    seen: set[tuple[str, str]] = set()
    details: list[dict[str, str]] = []
    errors = sorted(validator_for(schema_name).iter_errors(body), key=_error_order)
    for error in errors:
        if error.validator == "type":
            raise LineError(
                400,
                f"The property, '{property_path(error.absolute_path) or '$'}', in the request "
                "body is invalid (line: -, column: -)",
            )
        for prop, message in _details_for(error):
            if (prop, message) not in seen:
                seen.add((prop, message))
                details.append({"message": message, "property": prop})
    return details


def _error_order(error: ValidationError) -> tuple[str, ...]:
    return tuple(f"{p:08d}" if isinstance(p, int) else p for p in error.absolute_path)


# --- LINE's limits beyond the spec -------------------------------------------------------------


def _https(value: Any, prop: str, out: list[dict[str, str]]) -> None:
    if not isinstance(value, str):
        return
    if not value.startswith("https://"):
        out.append({"message": "Must be a valid HTTPS URL", "property": prop})
    elif len(value) > MAX_URL_LENGTH:
        out.append({"message": f"Length must be between 0 and {MAX_URL_LENGTH}", "property": prop})


def _max_len(value: Any, limit: int, prop: str, out: list[dict[str, str]], low: int = 0) -> None:
    if isinstance(value, str) and not low <= len(value) <= limit:
        out.append({"message": f"Length must be between {low} and {limit}", "property": prop})


def _action_limits(action: Any, prop: str, out: list[dict[str, str]]) -> None:
    if not isinstance(action, dict):
        return
    _max_len(action.get("label"), 20, f"{prop}.label", out)
    required = _ACTION_REQUIRED.get(str(action.get("type")))
    if required and required not in action:
        out.append({"message": "must be specified", "property": f"{prop}.{required}"})
    if action.get("type") == "uri":
        uri = action.get("uri")
        _max_len(uri, 1000, f"{prop}.uri", out)
        if isinstance(uri, str) and not uri.startswith(("https://", "http://", "line://", "tel:")):
            out.append({"message": "Invalid URI scheme", "property": f"{prop}.uri"})


def _template_limits(template: Any, prop: str, out: list[dict[str, str]]) -> None:
    if not isinstance(template, dict):
        return
    kind = template.get("type")
    actions = template.get("actions")
    if kind == "buttons":
        _https(template.get("thumbnailImageUrl"), f"{prop}.thumbnailImageUrl", out)
        _max_len(template.get("title"), 40, f"{prop}.title", out)
        has_image = "thumbnailImageUrl" in template or "title" in template
        _max_len(template.get("text"), 60 if has_image else 160, f"{prop}.text", out, low=1)
        if isinstance(actions, list) and not 1 <= len(actions) <= 4:
            out.append({"message": "Size must be between 1 and 4", "property": f"{prop}.actions"})
    elif kind == "confirm":
        _max_len(template.get("text"), 240, f"{prop}.text", out, low=1)
        if isinstance(actions, list) and len(actions) != 2:
            out.append({"message": "Size must be between 2 and 2", "property": f"{prop}.actions"})
    elif kind in ("carousel", "image_carousel"):
        columns = template.get("columns")
        if isinstance(columns, list):
            if not 1 <= len(columns) <= 10:
                out.append(
                    {"message": "Size must be between 1 and 10", "property": f"{prop}.columns"}
                )
            for i, column in enumerate(columns):
                if isinstance(column, dict):
                    url_key = "thumbnailImageUrl" if kind == "carousel" else "imageUrl"
                    _https(column.get(url_key), f"{prop}.columns[{i}].{url_key}", out)
                    for j, action in enumerate(column.get("actions") or []):
                        _action_limits(action, f"{prop}.columns[{i}].actions[{j}]", out)
                    if "action" in column:
                        _action_limits(column["action"], f"{prop}.columns[{i}].action", out)
    if isinstance(actions, list):
        for j, action in enumerate(actions):
            _action_limits(action, f"{prop}.actions[{j}]", out)


def message_limits(messages: Any, prefix: str = "messages") -> list[dict[str, str]]:
    """LINE's documented per-message limits that the OpenAPI document leaves out."""
    out: list[dict[str, str]] = []
    if not isinstance(messages, list):
        return out
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        prop = f"{prefix}[{i}]"
        kind = message.get("type")
        if kind in ("text", "textV2"):
            text = message.get("text")
            if isinstance(text, str):
                if text == "":
                    out.append({"message": "May not be empty", "property": f"{prop}.text"})
                elif utf16_length(text) > MAX_TEXT_UTF16:
                    out.append(
                        {
                            "message": f"Length must be between 0 and {MAX_TEXT_UTF16}",
                            "property": f"{prop}.text",
                        }
                    )
        for key in _HTTPS_PROPERTIES.get(str(kind), ()):
            _https(message.get(key), f"{prop}.{key}", out)
        if kind in ("template", "imagemap", "flex"):
            _max_len(message.get("altText"), 1500, f"{prop}.altText", out, low=1)
        if kind == "template":
            _template_limits(message.get("template"), f"{prop}.template", out)
        sender = message.get("sender")
        if isinstance(sender, dict):
            _https(sender.get("iconUrl"), f"{prop}.sender.iconUrl", out)
        quick = message.get("quickReply")
        if isinstance(quick, dict):
            for j, item in enumerate(quick.get("items") or []):
                if isinstance(item, dict):
                    _action_limits(item.get("action"), f"{prop}.quickReply.items[{j}].action", out)
    return out


def rich_menu_limits(body: dict[str, Any]) -> list[dict[str, str]]:
    """Rich menu rules from LINE's documentation (the spec marks nothing as required)."""
    out: list[dict[str, str]] = []
    for key in ("size", "selected", "name", "chatBarText", "areas"):
        if key not in body:
            out.append({"message": "must be specified", "property": key})
    size = body.get("size")
    if isinstance(size, dict):
        width, height = size.get("width"), size.get("height")
        if isinstance(width, int) and not 800 <= width <= 2500:
            out.append({"message": "Must be between 800 and 2500", "property": "size.width"})
        if isinstance(height, int) and height < 250:
            out.append(
                {"message": "Must be greater than or equal to 250", "property": "size.height"}
            )
        if isinstance(width, int) and isinstance(height, int) and height and width / height < 1.45:
            out.append({"message": "Aspect ratio must be at least 1.45", "property": "size"})
    areas = body.get("areas")
    if isinstance(areas, list):
        if len(areas) > 20:
            out.append({"message": "Size must be between 0 and 20", "property": "areas"})
        for i, area in enumerate(areas):
            if isinstance(area, dict):
                _action_limits(area.get("action"), f"areas[{i}].action", out)
    return out


# --- entry points ----------------------------------------------------------------------------


def _schema_view(body: dict[str, Any], endpoint: str | None) -> dict[str, Any]:
    """What the JSON-schema pass looks at. A well-formed multicast ``to`` (1–500 strings of
    LINE's user-ID shape) is represented by its first ID: running the schema over each of
    500 IDs cost ~11 ms a request and told nothing the per-ID format check below does not.
    Anything out of the ordinary is validated whole, so LINE's error answers are unchanged."""
    to = body.get("to")
    if (
        endpoint == "multicast"
        and isinstance(to, list)
        and 1 <= len(to) <= MAX_MULTICAST_RECIPIENTS
        and all(isinstance(u, str) and USER_ID_RE.match(u) for u in to)
    ):
        return {**body, "to": to[:1]}
    return body


def validate_body(schema_name: str, body: Any, *, endpoint: str | None = None) -> dict[str, Any]:
    """Validate a parsed JSON body for one endpoint; return it or raise ``LineError``.

    ``endpoint`` selects the extra checks: ``"multicast"`` and ``"push"`` check recipient IDs,
    ``"richmenu"`` the rich menu rules; everything with ``messages`` gets the message limits.
    """
    if not isinstance(body, dict):
        raise LineError(
            400, "The property, '$', in the request body is invalid (line: -, column: -)"
        )
    details = schema_details(schema_name, copy.deepcopy(_schema_view(body, endpoint)))
    details += message_limits(body.get("messages"))
    if endpoint == "multicast" and isinstance(body.get("to"), list):
        for i, user_id in enumerate(body["to"]):
            if isinstance(user_id, str) and not USER_ID_RE.match(user_id):
                details.append({"message": "Invalid user ID", "property": f"to[{i}]"})
    if (
        endpoint == "push"
        and isinstance(body.get("to"), str)
        and not PUSH_TARGET_RE.match(body["to"])
    ):
        raise LineError(
            400, "The property, 'to', in the request body is invalid (line: -, column: -)"
        )
    if endpoint == "richmenu":
        details += rich_menu_limits(body)
    unique: list[dict[str, str]] = []
    for detail in details:
        if detail not in unique:
            unique.append(detail)
    if unique:
        raise body_error(unique)
    return body
