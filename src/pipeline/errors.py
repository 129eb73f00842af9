"""Errors a client can cause, each carrying the HTTP status it deserves."""

from __future__ import annotations

from http import HTTPStatus


class PipelineError(Exception):
    """Base class: `status` is the HTTP status, the message is shown to the client as is."""

    status: HTTPStatus = HTTPStatus.BAD_REQUEST
    retry_after_s: int | None = None
    """Set on errors that pass: the client may send the same request again after this long."""

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)} if self.retry_after_s else {}


class InvalidImage(PipelineError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY


class UnsupportedImage(PipelineError):
    """Not one of the accepted image formats."""

    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class UploadTooLarge(PipelineError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class InvalidRequest(PipelineError):
    status = HTTPStatus.BAD_REQUEST


class NotFound(PipelineError):
    status = HTTPStatus.NOT_FOUND


class Unauthorized(PipelineError):
    """No credentials, or credentials we do not know."""

    status = HTTPStatus.UNAUTHORIZED

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="gore-censor"'}


class Forbidden(PipelineError):
    """Known credentials without the role this needs, or a path outside what may be read."""

    status = HTTPStatus.FORBIDDEN


class Conflict(PipelineError):
    """Asked of a deployment whose configuration says no (collection jobs turned off)."""

    status = HTTPStatus.CONFLICT


class ModelNotReady(PipelineError):
    """The model store lacks a model, or holds one that must not be served."""

    status = HTTPStatus.SERVICE_UNAVAILABLE


class Unavailable(PipelineError):
    """A passing condition: a model service down, the service busy or shutting down. Try again."""

    status = HTTPStatus.SERVICE_UNAVAILABLE

    def __init__(self, message: str, retry_after_s: int = 5):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestTimeout(PipelineError):
    """A request body that stopped arriving: the upload is dropped, nothing kept."""

    status = HTTPStatus.REQUEST_TIMEOUT


class StoreFull(PipelineError):
    """The data directory has no room: nothing partial was written; the service answers again once there is."""

    status = HTTPStatus.INSUFFICIENT_STORAGE
    retry_after_s = 60


class WeightsUnavailable(RuntimeError):
    """Pretrained weights could not be fetched (offline machine, blocked network)."""
