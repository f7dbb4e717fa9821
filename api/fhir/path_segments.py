"""Path segments of FHIR URLs, as Starlette convertors: `{type:fhirtype}` and `{id:fhirid}`.

Registered on import; routers that use them import this module. Strict segments keep
/fhir/metadata, /fhir/$export, /fhir/Patient/$export and /fhir/Patient/_history out of the
read and search routes.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class _Segment(Convertor[str]):
    """A string segment passed through unchanged; subclasses set the `regex` it must match."""

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class _ResourceType(_Segment):
    regex = "[A-Z][A-Za-z]*"  # resource types are capitalised


class _ResourceId(_Segment):
    regex = r"[A-Za-z0-9\-\.]{1,64}"  # FHIR's id syntax: none starts with `$` or `_`


register_url_convertor("fhirtype", _ResourceType())
register_url_convertor("fhirid", _ResourceId())
