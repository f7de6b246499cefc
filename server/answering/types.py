"""The nouns of answering. The HTML page, the JSON API and the CLI all render the same `Answer`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from index.types import Hit


@dataclass(frozen=True)
class Citation:
    """A numbered source passage; `span_start:span_end` index the article text and mark the supporting span."""

    n: int
    article_id: str
    title: str
    source: str
    url: str
    published: str
    chunk_id: int
    chunk_text: str
    span_start: int
    span_end: int
    quote: str = ""  # the supporting span's text, article.text[span_start:span_end]


@dataclass(frozen=True)
class Sentence:
    """One answer sentence with the numbers of the citations that support it."""

    text: str
    citations: tuple[int, ...] = ()
    supported: bool = False
    score: float = 0.0


@dataclass(frozen=True)
class Answer:
    """A full answer. `mode` is "evidence" (built from the evidence alone), "generated" (the model's checked
    sentences joined it) or "abstained"."""

    question: str
    answer: str
    sentences: tuple[Sentence, ...] = ()
    citations: tuple[Citation, ...] = ()
    abstained: bool = False
    mode: str = "generated"
    message: str = ""
    nearest: tuple[Hit, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    evidence_score: float = 0.0  # how strongly the retrieved evidence bears on the question (abstention signal)
    usage: dict[str, int] = field(default_factory=lambda: token_usage())
    draft: str = ""  # the model's unchecked text, only with BYLINE_SHOW_DRAFT=true; never part of `answer`

    def to_dict(self) -> dict:
        """The JSON shape shared by `byline ask --json`, POST /api/ask and the chat page."""
        return asdict(self)


@dataclass(frozen=True)
class Delta:
    """A piece of checked answer text (whole sentences that passed the support check, with their [n] markers).

    `citations` are the citations this text refers to first. All Delta texts joined equal the final `Answer.answer`.
    """

    text: str
    citations: tuple[Citation, ...] = ()


def token_usage(prompt_tokens: int = 0, completion_tokens: int = 0) -> dict[str, int]:
    """Token counts in OpenAI's shape.

    >>> token_usage(120, 30)
    {'prompt_tokens': 120, 'completion_tokens': 30, 'total_tokens': 150}
    """
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
