"""Article metadata: front matter (YAML `---` or TOML `+++`), dates, and metadata values made into text."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

import yaml

from index.decoding import CONTROL_CHARACTERS
from index.errors import CorpusFileError

_FRONT_MATTER = re.compile(r"\A(?P<fence>---|\+\+\+)[ \t]*\n(?P<meta>.*?)^(?P=fence)[ \t]*$\n?", re.S | re.M)


class _FrontMatterLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing aliases (a few bytes of them expand to gigabytes) and keeping bad dates as text."""

    def compose_node(self, parent, index):
        """Refuse an alias (`*name`) before anything is built from it."""
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise CorpusFileError(
                f"front matter uses a YAML alias at line {mark.line + 2}, which could expand without limit; "
                "Byline doesn't expand aliases"
            )
        return super().compose_node(parent, index)

    def construct_yaml_timestamp(self, node):
        """A YAML date, or its text when it is no real date (2024-13-45), so only the date is dropped."""
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_FrontMatterLoader.add_constructor("tag:yaml.org,2002:timestamp", _FrontMatterLoader.construct_yaml_timestamp)


def split_front_matter(text: str) -> tuple[dict, str]:
    """Split YAML (`---`) or TOML (`+++`) front matter off a text: (fields, body); ({}, text) when there is none.

    >>> split_front_matter("---\\ntitle: Rome\\n---\\nBody.")
    ({'title': 'Rome'}, 'Body.')
    >>> split_front_matter('+++\\ntitle = "Rome"\\n+++\\nBody.')
    ({'title': 'Rome'}, 'Body.')
    >>> split_front_matter("No front matter.")
    ({}, 'No front matter.')
    """
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    parse = _parse_toml if match.group("fence") == "+++" else _parse_yaml
    fields = parse(match.group("meta"))
    if not isinstance(fields, dict):  # `---` lines that fence no mapping are horizontal rules, part of the text
        return {}, text
    return fields, text[match.end():]


def _parse_yaml(meta: str) -> object:
    """YAML front matter as Python values; problems raise CorpusFileError naming the line in the file."""
    try:
        return yaml.load(meta, Loader=_FrontMatterLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        # +2: lines are counted from 1, and the opening --- is line 1 of the file.
        where = f" at line {mark.line + 2}, column {mark.column + 1}" if mark else ""
        raise CorpusFileError(f"invalid YAML front matter{where}") from error
    except RecursionError as error:
        raise CorpusFileError("YAML front matter is nested too deeply") from error


def _parse_toml(meta: str) -> dict:
    """TOML front matter as Python values; problems raise CorpusFileError."""
    import tomllib

    try:
        return tomllib.loads(meta)
    except tomllib.TOMLDecodeError as error:
        raise CorpusFileError(f"invalid TOML front matter: {error}") from error
    except RecursionError as error:
        raise CorpusFileError("TOML front matter is nested too deeply") from error


def field_text(value: object) -> str | None:
    """A metadata value (or a list of them) as one line of text ("" for none); None for a mapping or nested list.

    >>> field_text(["Ann Lee", "Bo Chen"]), field_text(2024), field_text(None), field_text({"en": "Rome"})
    ('Ann Lee, Bo Chen', '2024', '', None)
    """
    if isinstance(value, (list, tuple, set)):
        parts = [_scalar_text(item) for item in value]
        return None if None in parts else ", ".join(part for part in parts if part)
    return _scalar_text(value)


def _scalar_text(value: object) -> str | None:
    """A text, number or date as one line of text ("" for none); None for anything else."""
    if value is None:
        return ""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, (str, int, float)):
        return " ".join(CONTROL_CHARACTERS.sub("", str(value)).split())
    return None


def normalize_date(value: object) -> str:
    """An ISO 8601 date (or datetime, when a time is given) for a date in any common form; "" if unparseable.

    >>> normalize_date("April 10, 2024"), normalize_date("2023-11-27T08:45:59Z"), normalize_date("2024-13-45")
    ('2024-04-10', '2023-11-27T08:45:59+00:00', '')
    >>> normalize_date("1" * 200)  # dateutil alone would call this 1111-11-11
    ''
    """
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=timezone.utc).isoformat()
        except (OverflowError, OSError, ValueError):
            return ""
    if not isinstance(value, str) or not value.strip():
        return ""
    text = value.strip()
    if len(text) > 100:  # no date is this long, and dateutil reads a run of digits as one
        return ""
    try:
        parsed = datetime.fromisoformat(text)
        return parsed.date().isoformat() if len(text) <= 10 else parsed.isoformat()
    except ValueError:
        pass
    from dateutil import parser as date_parser

    try:
        # Parsing with two different default times tells whether the string carried a time of its own.
        first = date_parser.parse(text, default=datetime(2000, 1, 1, 0, 0, 0))
        second = date_parser.parse(text, default=datetime(2000, 1, 1, 13, 31, 17))
    except (ValueError, OverflowError, TypeError):
        return ""
    return first.isoformat() if first == second else first.date().isoformat()
