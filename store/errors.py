"""The one error hierarchy of reptrend.

Raised below the HTTP layer; `api/errors.py` maps every class to a status code and a FHIR
OperationOutcome in one place. Messages never contain patient data: they name elements, types
and ids, not values.
"""

from __future__ import annotations


class ReptrendError(Exception):
    """Base class. `code` is the OperationOutcome issue code (http://hl7.org/fhir/issue-type)."""

    code = "exception"

    def __init__(self, diagnostics: str, expression: str | None = None) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.expression = expression
        # Which write of a batch failed, so Bundle processing can name the entry; or, from
        # checks across the batch, the (type, id) of the resource at fault, which
        # `ResourceStore.write` turns into the index.
        self.batch_index: int | None = None
        self.resource_key: tuple[str, str] | None = None


class InvalidResource(ReptrendError):
    """The resource does not conform to FHIR R4 or to the session contract."""

    code = "invalid"


class InvalidRequest(ReptrendError):
    """The request itself is malformed (bad JSON, bad parameter, bad Bundle entry)."""

    code = "invalid"


class NotSupported(ReptrendError):
    """The resource type, interaction or parameter is not offered by this server."""

    code = "not-supported"


class MethodNotAllowed(NotSupported):
    """The interaction is not offered for this resource type (a read-only type's writes)."""


class ResourceNotFound(ReptrendError):
    code = "not-found"


class ResourceGone(ReptrendError):
    """The resource existed and was deleted."""

    code = "deleted"


class VersionConflict(ReptrendError):
    """A concurrent write changed the resource first; the client may retry."""

    code = "conflict"


class PreconditionFailed(ReptrendError):
    """If-Match named a version that is not the current one."""

    code = "conflict"


class SchemaNotMigrated(ReptrendError):
    """The database schema is missing or behind the code: run `reptrend migrate`."""

    code = "exception"
