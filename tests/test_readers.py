"""Readers at the edges: line ends, mixed encodings, front matter (YAML, TOML, aliases), odd metadata, per-file limits."""

from __future__ import annotations

import json

from index.chunking import ChunkSettings, chunk_spans
from index.corpus import read_corpus
from index.types import CorpusLimits, FileWarning, Skipped


def write(folder, name: str, content: str | bytes):
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def one_article(folder, name: str, content: str | bytes, **limits):
    """The only article read from a corpus of one file, and the warnings about it."""
    write(folder, name, content)
    (article,), skipped, warnings = read_corpus(folder, limits=CorpusLimits(**limits))
    assert skipped == []
    return article, [w.message for w in warnings]


def skip_reason(folder, name: str, content: str | bytes, **limits) -> str:
    write(folder, name, content)
    articles, (skipped,), _ = read_corpus(folder, limits=CorpusLimits(**limits))
    assert articles == [] and skipped.path == name
    return skipped.reason


# --- line ends and encodings ---------------------------------------------------------------------


def test_cr_only_line_ends_with_front_matter(tmp_path):
    article, warnings = one_article(tmp_path, "mac.md", b"---\rtitle: Old Mac file\r---\rFirst line.\r\rSecond paragraph.\r")
    assert (article.title, article.text, warnings) == ("Old Mac file", "First line.\n\nSecond paragraph.", [])


def test_mixed_line_ends(tmp_path):
    article, _ = one_article(tmp_path, "mixed.txt", b"# Mixed\r\n\r\nOne.\rTwo.\nThree.\r\n")
    assert (article.title, article.text) == ("Mixed", "One.\nTwo.\nThree.")


def test_utf8_and_latin1_lines_are_decoded_each_in_its_own_encoding(tmp_path):
    data = "Café opens in Málaga.\n".encode("utf-8") + "La feria de Málaga empezó ayer.\n".encode("latin-1")
    article, _ = one_article(tmp_path, "mix.txt", data)
    assert article.text == "Café opens in Málaga.\nLa feria de Málaga empezó ayer."


# --- front matter --------------------------------------------------------------------------------


def test_toml_front_matter_is_metadata(tmp_path):
    text = '+++\ntitle = "Dam opens"\nsource = "River Post"\nauthors = ["Ann Lee", "Bo Chen"]\ndate = 2024-05-01\n+++\nThe dam opened.\n'
    article, warnings = one_article(tmp_path, "dam.md", text)
    assert (article.title, article.source, article.author, article.published, article.text) == (
        "Dam opens", "River Post", "Ann Lee, Bo Chen", "2024-05-01", "The dam opened.")
    assert warnings == []


def test_invalid_toml_front_matter_is_skipped_with_its_reason(tmp_path):
    assert skip_reason(tmp_path, "bad.md", "+++\ntitle = \n+++\nText.\n").startswith("invalid TOML front matter: ")


def test_impossible_date_drops_the_date_not_the_article(tmp_path):
    article, warnings = one_article(tmp_path, "date.md", "---\ntitle: Bad date\npublished: 2024-13-45\n---\nText stays.\n")
    assert (article.title, article.published, article.text) == ("Bad date", "", "Text stays.")
    assert warnings == ["published '2024-13-45' is not a date: left out"]


def test_impossible_date_in_a_json_record_warns_too(tmp_path):
    write(tmp_path, "feed.json", json.dumps([{"body": "Kept.", "published_at": "someday"}]))
    (article,), _, warnings = read_corpus(tmp_path)
    assert article.published == "" and warnings == [FileWarning("feed.json#1", "published_at 'someday' is not a date: left out")]


def test_a_mapping_title_is_refused_not_stored_as_a_repr(tmp_path):
    article, warnings = one_article(tmp_path, "dict.md", "---\ntitle:\n  en: Rome\n  it: Roma\n---\n# The heading\n\nBody.\n")
    assert (article.title, article.text) == ("The heading", "Body.")
    assert warnings == ["title is not text (a dict): left out"]


def test_other_values_are_made_text_sensibly(tmp_path):
    text = "---\ntitle: 1984\nsource: [Wire, Post]\nauthor: [[nested]]\nurl: true\n---\nBody.\n"
    article, warnings = one_article(tmp_path, "values.md", text)
    assert (article.title, article.source, article.author, article.url) == ("1984", "Wire, Post", "", "True")
    assert warnings == ["author is not text (a list): left out"]


def test_yaml_aliases_are_refused_before_they_expand(tmp_path):
    rows = ["a: &a [" + ", ".join(['"lol"'] * 10) + "]"]
    rows += [f"{b}: &{b} [" + ", ".join([f"*{a}"] * 10) + "]" for a, b in zip("abcdefgh", "bcdefghi")]
    laughs = "---\n" + "\n".join(rows) + "\ntitle: *i\n---\nBody.\n"  # a billion "lol"s if expanded
    assert len(laughs) < 1000
    reason = skip_reason(tmp_path, "laughs.md", laughs)
    assert reason == ("front matter uses a YAML alias at line 3, which could expand without limit; "
                      "Byline doesn't expand aliases")


def test_an_anchor_without_alias_is_harmless_and_read(tmp_path):
    article, _ = one_article(tmp_path, "anchor.md", "---\ntitle: &t Rome offers sites\n---\nBody.\n")
    assert article.title == "Rome offers sites"


def test_deeply_nested_front_matter_is_skipped(tmp_path):
    reason = skip_reason(tmp_path, "deep.md", "---\ntitle: " + "[" * 50_000 + "]" * 50_000 + "\n---\nBody.\n")
    assert reason == "YAML front matter is nested too deeply"


def test_dashes_fencing_no_mapping_are_text(tmp_path):
    article, _ = one_article(tmp_path, "rules.txt", "---\nJust a line between rules.\n---\nMore text.\n")
    assert article.text == "---\nJust a line between rules.\n---\nMore text."


def test_overlong_metadata_is_left_out_with_a_warning(tmp_path):
    article, warnings = one_article(tmp_path, "long.md", f"---\ntitle: {'x' * 2000}\nsource: Wire\n---\nBody.\n")
    assert (article.title, article.source) == ("", "Wire")
    assert warnings == ["title is 2,000 characters, over the 1,000-character limit: left out"]


# --- JSON and JSONL ------------------------------------------------------------------------------


def test_jsonl_keeps_good_lines_and_names_each_bad_one(tmp_path):
    lines = [json.dumps({"body": "Good one."}), "{oops", "[" * 100_000 + "]" * 100_000, "42", json.dumps({"body": "Good two."})]
    write(tmp_path, "feed.jsonl", "\r\n".join(lines))
    articles, skipped, _ = read_corpus(tmp_path)
    assert [a.path for a in articles] == ["feed.jsonl#1", "feed.jsonl#5"]
    assert skipped == [
        Skipped("feed.jsonl#2", "malformed JSON at line 2, column 2: Expecting property name enclosed in double quotes"),
        Skipped("feed.jsonl#3", "JSON at line 3 is nested too deeply to read"),
        Skipped("feed.jsonl#4", "record is a JSON int, not an object"),
    ]


def test_deeply_nested_json_file_is_skipped_with_its_reason(tmp_path):
    assert skip_reason(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000) == "JSON is nested too deeply to read"


def test_too_many_records_skip_the_file(tmp_path):
    write(tmp_path, "ok.json", json.dumps([{"body": f"Story {i}."} for i in range(3)]))
    write(tmp_path, "many.jsonl", "\n".join(json.dumps({"body": f"Line {i}."}) for i in range(4)))
    articles, skipped, _ = read_corpus(tmp_path, limits=CorpusLimits(max_records_per_file=3))
    assert [a.path for a in articles] == ["ok.json#1", "ok.json#2", "ok.json#3"]
    assert skipped == [Skipped("many.jsonl", "holds 4 records, over the 3-record limit per file")]


# --- chunks per article --------------------------------------------------------------------------


def test_one_letter_lines_over_the_chunk_limit_are_skipped_cheaply(tmp_path):
    reason = skip_reason(tmp_path, "letters.txt", "a\n" * 1_000_000)
    assert reason == "too long: at least 5,000 chunks, over the 500-chunk limit per article"


def test_chunk_limit_is_exact_near_the_limit(tmp_path):
    text = " ".join(f"Sentence number {i} is here." for i in range(200))
    exact = len(chunk_spans(text, 50, 10))
    write(tmp_path, "edge.txt", text)
    chunk = ChunkSettings(50, 10)
    assert len(read_corpus(tmp_path, chunk=chunk, limits=CorpusLimits(max_chunks_per_article=exact)).articles) == 1
    (skipped,) = read_corpus(tmp_path, chunk=chunk, limits=CorpusLimits(max_chunks_per_article=exact - 1)).skipped
    assert skipped.reason == f"too long: at least {exact} chunks, over the {exact - 1}-chunk limit per article"


def test_lone_surrogates_from_json_escapes_cannot_abort_a_build(tmp_path, fake_embedder):
    from index.build import build_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write(corpus, "feed.json", '[{"title": "T \\ud800", "body": "Body \\udfff here.", "author": "A\\udc80"}]')
    (article,) = read_corpus(corpus).articles
    assert (article.title, article.text, article.author) == ("T \ufffd", "Body \ufffd here.", "A\ufffd")
    assert build_index(corpus, tmp_path / "index", fake_embedder).added == 1


def test_control_characters_are_dropped_from_metadata(tmp_path):
    article, _ = one_article(tmp_path, "esc.md", '---\ntitle: "Red \\e[31malert\\a"\n---\nBody.\n')
    assert article.title == "Red [31malert"
