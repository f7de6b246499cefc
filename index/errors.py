"""Byline's domain errors. They become CLI messages or HTTP errors only at the edge."""


class BylineError(Exception):
    """Base of every error Byline reports to a user."""

    http_status = 500


class IndexNotBuilt(BylineError):
    """No index exists in the index directory yet."""

    http_status = 503


class IndexMismatch(BylineError):
    """The index on disk was built with another model, format or chunk settings."""

    http_status = 503


class IndexBusy(BylineError):
    """Another build holds the index directory."""

    http_status = 409


class StoreUnavailable(BylineError):
    """The index's store can't be reached or opened (a Milvus URI that doesn't answer, a busy Milvus Lite file)."""

    http_status = 503


class CorpusFileError(BylineError):
    """A corpus file can't be read as articles; the message names the file and the reason."""

    http_status = 422


class ArticleNotFound(BylineError):
    """No article has the requested id."""

    http_status = 404


class LLMUnavailable(BylineError):
    """The language model could not be loaded or reached, or timed out."""

    http_status = 503


class QueueFull(BylineError):
    """Too many requests are waiting for the language model."""

    http_status = 429


class QueryFileError(BylineError):
    """An evaluation query file can't be read; the message names the file, the record and the field."""

    http_status = 422


class UploadRefused(BylineError):
    """An uploaded file can't go into the corpus folder: a bad name, an unsupported type, or nothing readable."""

    http_status = 400


class UploadTooLarge(BylineError):
    """An uploaded file is over the corpus file size limit."""

    http_status = 413


class UploadExists(BylineError):
    """A file of the uploaded name is already in the corpus folder, and replacing it wasn't asked for."""

    http_status = 409


class EmbedderUnavailable(BylineError):
    """The embedding model can't be loaded or exported with the chosen backend."""

    http_status = 503
