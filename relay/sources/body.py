"""Raw request bodies to JSON-like values that expressions can read.

JSON as it is; forms (urlencoded or multipart) as objects of strings, a repeated field as a
list; XML (parsed safely: no DTDs, no entities) the way xmltodict would give it, with
namespace prefixes and attributes dropped and `xsi:nil` elements as null.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable
from pathlib import PurePath
from typing import Any
from urllib.parse import parse_qsl
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import MultiPartParser
from werkzeug.http import parse_options_header

from relay.errors import BodyError

MAX_FORM_PARTS = 1000
MAX_XML_DEPTH = 100  # a SOAP notification is 6 deep; each level costs stack when converted
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
_BY_SUFFIX = {
    ".json": "application/json",
    ".xml": "text/xml",
    ".form": "application/x-www-form-urlencoded",
}


def content_type_for(filename: str) -> str | None:
    """The content type an example body file stands for, by its suffix."""
    return _BY_SUFFIX.get(PurePath(filename).suffix.lower())


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_body(raw: bytes, content_type: str | None) -> Any:
    """Parse a JSON, form, multipart or XML body; an empty body is null."""
    kind = media_type(content_type)
    if not raw.strip():
        return None
    if kind in ("", "text/plain") and raw.lstrip()[:1] in (b"{", b"["):
        kind = "application/json"  # senders that do not label their JSON
    if kind == "application/json" or kind.endswith("+json"):
        return parse_json(raw)
    if kind == "application/x-www-form-urlencoded":
        return parse_form(raw)
    if kind == "multipart/form-data":
        return parse_multipart(raw, content_type or "")
    if kind in ("text/xml", "application/xml") or kind.endswith("+xml"):
        return parse_xml(raw)
    raise BodyError(
        f"unsupported content type {kind or '(none)'!r}: send application/json, "
        "application/x-www-form-urlencoded, multipart/form-data or XML",
        status=415,
    )


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(_text(raw), parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise BodyError(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise BodyError("the JSON body is nested too deeply") from None
    except ValueError as exc:  # numbers too long or too large, NaN, Infinity
        raise BodyError(f"the JSON body has a number we cannot take: {exc}") from None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def _no_constant(text: str) -> float:
    raise ValueError(f"{text} is not JSON")


def parse_form(raw: bytes) -> dict[str, Any]:
    return _fields(parse_qsl(_text(raw), keep_blank_values=True))


def parse_multipart(raw: bytes, content_type: str) -> dict[str, Any]:
    """Form fields as strings; an uploaded file as {filename, content_type, size}."""
    boundary = parse_options_header(content_type)[1].get("boundary")
    if not boundary:
        raise BodyError("multipart/form-data without a boundary in its Content-Type")
    parser = MultiPartParser(max_form_parts=MAX_FORM_PARTS, max_form_memory_size=len(raw))
    try:
        fields, files = parser.parse(io.BytesIO(raw), boundary.encode(), len(raw))
    except (ValueError, RequestEntityTooLarge) as exc:
        raise BodyError(f"the multipart body cannot be read: {exc}") from None
    items: list[tuple[str, Any]] = list(fields.items(multi=True))
    for name, upload in files.items(multi=True):
        data = upload.stream.read()
        items.append((name, {"filename": upload.filename, "content_type": upload.content_type,
                             "size": len(data)}))
    return _fields(items)


def parse_xml(raw: bytes) -> dict[str, Any]:
    try:
        root = fromstring(raw, forbid_dtd=True)
    except DefusedXmlException:
        raise BodyError("XML with a DTD or entities is refused") from None
    except ParseError as exc:
        raise BodyError(f"the body is not valid XML: {exc}") from None
    _check_depth(root)
    return {_local(root.tag): _element(root)}


def _check_depth(root: Element) -> None:
    """BodyError past MAX_XML_DEPTH, found without recursion (which is what a deep document
    would exhaust)."""
    level: list[Element] = [root]
    for depth in range(1, MAX_XML_DEPTH + 1):
        level = [child for element in level for child in element]
        if not level:
            return
        if depth == MAX_XML_DEPTH:
            raise BodyError(f"the XML body is nested deeper than {MAX_XML_DEPTH} levels")


def _element(element: Element) -> Any:
    if element.get(_XSI_NIL) in ("true", "1"):
        return None
    children = list(element)
    if not children:
        return element.text
    return _fields((_local(child.tag), _element(child)) for child in children)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _fields(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Name-value pairs as an object; a repeated name becomes the list of its values."""
    grouped: dict[str, list[Any]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return {key: values[0] if len(values) == 1 else values for key, values in grouped.items()}


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BodyError(f"the body is not valid UTF-8 (byte {exc.start})") from None
