"""The `byline` command: index, search, eval, ask, serve. Domain errors become one line and exit 1."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import asdict
from pathlib import Path

from pydantic import ValidationError

from index.errors import BylineError
from server.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from BYLINE_* variables, overridden by the flags that were given."""
    overrides = {
        key: value
        for key, value in vars(args).items()
        if key in Settings.model_fields and value is not None
    }
    return Settings(**overrides)


def settings_problem(error: ValidationError) -> str:
    """The invalid settings of a ValidationError, named as their BYLINE_* variables.

    >>> try:
    ...     Settings(port="abc")
    ... except ValidationError as error:
    ...     print(settings_problem(error))
    BYLINE_PORT='abc': Input should be a valid integer, unable to parse string as an integer
    """
    return "; ".join(
        f"BYLINE_{'_'.join(str(part) for part in problem['loc']).upper()}={problem.get('input')!r}: {problem['msg']}"
        for problem in error.errors()
    )


def _embedder(settings: Settings):
    from index.embed import load_embedder

    return load_embedder(settings.embedder_spec())


def _build_progress(stream=None):
    """A build_index progress callback: one line redrawn in place on a TTY, a line per step otherwise."""
    stream = stream or sys.stderr
    tty = stream.isatty()
    shown = {"stage": None}

    def show(stage: str, done: int, total: int) -> None:
        if stage == "done":
            if tty and shown["stage"]:
                stream.write("\n")
            return
        figures = f"{done}/{total}" if total else (str(done) if done else "")  # no total: still reading
        if tty:
            stream.write(f"\r{stage:<10} {figures:<16}")
            stream.flush()
        elif stage != shown["stage"] or stage == "embedding":
            print(f"{stage} {figures}".rstrip(), file=stream, flush=True)
        shown["stage"] = stage

    return show


def _index_once(settings: Settings, embedder, *, full: bool = False, as_json: bool = False) -> None:
    """Run one build and print its summary (every skipped file with its reason), as text or JSON."""
    from index.build import build_from_settings

    summary = build_from_settings(settings, embedder, full=full, progress=_build_progress())
    if as_json:
        print(json.dumps(asdict(summary), indent=2, ensure_ascii=False), flush=True)
        return
    print(f"indexed {settings.corpus_dir} into {settings.index_dir if settings.store == 'local' else settings.store} in {summary.seconds:.1f} s")
    print(
        f"  added {summary.added}, changed {summary.changed}, unchanged {summary.unchanged}, "
        f"removed {summary.removed}, skipped {len(summary.skipped)}, warnings {len(summary.warnings)}"
    )
    resumed = f", {summary.chunks_resumed} resumed from an interrupted build" if summary.chunks_resumed else ""
    print(f"  chunks: {summary.chunks_embedded} embedded{resumed}, {summary.chunks_total} in the index")
    for skipped in summary.skipped:
        print(f"  skipped {skipped.path}: {skipped.reason}")
    for warning in summary.warnings:
        print(f"  warning {warning.path}: {warning.message}")
    sys.stdout.flush()  # a watching `byline index` prints each round as it ends, even into a pipe


def cmd_index(args: argparse.Namespace) -> int:
    """Build or incrementally update the index from the corpus folder; with --watch, keep it up to date."""
    settings = _settings(args)
    embedder = _embedder(settings)
    if not args.watch:
        _index_once(settings, embedder, full=args.full, as_json=args.json)
        return 0
    import threading

    from index.watch import corpus_changes

    def first_build() -> None:
        # The watcher is already listening, so a change made during this build starts the next round.
        _index_once(settings, embedder, full=args.full, as_json=args.json)
        print(f"watching {settings.corpus_dir} for changes (Ctrl-C stops)", file=sys.stderr, flush=True)

    for paths in corpus_changes(
        settings.corpus_dir, settings.index_dir, stop=threading.Event(), debounce_ms=settings.watch_debounce_ms,
        on_ready=first_build,
    ):
        print(f"changed: {', '.join(paths)}", file=sys.stderr, flush=True)
        try:
            _index_once(settings, embedder, as_json=args.json)
        except BylineError as error:  # say, another build holds the index: the next change tries again
            print(f"byline: {error}", file=sys.stderr, flush=True)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """Print the hits for a query."""
    from index.retrieve import Searcher
    from index.stores.base import store_backend
    from index.types import Filters

    settings = _settings(args)
    searcher = Searcher(store_backend(settings), _embedder(settings), settings.chunk_settings())
    filters = Filters(after=args.after, before=args.before, sources=tuple(args.source))
    hits = searcher.search(args.query, settings.k, filters)
    if args.json:
        print(json.dumps([asdict(hit) for hit in hits], indent=2, ensure_ascii=False))
        return 0
    if not hits:
        print("no hits")
    for rank, hit in enumerate(hits, start=1):
        snippet = " ".join(hit.text.split())
        snippet = snippet if len(snippet) <= 240 else snippet[:239] + "…"
        print(f"{rank:>2}. {hit.score:.3f}  {hit.title or '(untitled)'}")
        print(f"    {hit.source or 'unknown source'} · {hit.published[:10] or 'undated'} · {hit.url or hit.article_id}")
        print(f"    {snippet}")
    return 0


def _eval_index_dir(args: argparse.Namespace, settings: Settings) -> Path:
    """--index-dir if given; else a folder of its own per corpus, so eval never replaces the live index."""
    if args.index_dir is not None:
        return args.index_dir
    import hashlib

    corpus = args.corpus.resolve()
    digest = hashlib.sha1(str(corpus).encode()).hexdigest()[:10]
    return settings.index_dir.parent / f"eval-{corpus.stem}-{digest}"


def _variants(text: str) -> tuple[str, ...]:
    """The answer-eval variants named in a comma-separated list; an unknown one is a usage error."""
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in names if v not in ("evidence_only", "model")]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown variant(s) {', '.join(unknown) or '(none)'}: use evidence_only, model")
    return names


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate retrieval or answers on a MultiHop-RAG-format query file."""
    settings = _settings(args)
    index_dir = _eval_index_dir(args, settings)
    # Milvus too keeps the eval's index apart from the live one: collections named after the eval folder.
    eval_collection = f"{settings.milvus_collection}_{re.sub(r'[^A-Za-z0-9_]', '_', index_dir.name)}"
    settings = settings.model_copy(update={"index_dir": index_dir, "milvus_collection": eval_collection})
    if args.mode == "answer":
        from server.answering.evaluate import evaluate_answers

        summary = evaluate_answers(
            corpus=args.corpus, queries=args.queries, index_dir=index_dir, settings=settings, limit=args.limit, out=args.out,
            variants=args.variants,
        )
        print(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
        return 0
    from index.evaluate import evaluate_retrieval
    from index.stores.base import store_backend

    summary = evaluate_retrieval(
        args.corpus,
        args.queries,
        index_dir,
        _embedder(settings),
        k=args.k or 10,
        chunk=settings.chunk_settings(),
        limit=args.limit,
        backend=store_backend(settings),
    )
    text = json.dumps(summary, indent=2, ensure_ascii=False)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    """Answer one question with numbered sources."""
    from server.answering.ask import format_answer, load_answerer

    settings = _settings(args)
    answerer = load_answerer(settings, progress=_build_progress())
    answer = answerer.answer(args.question, k=args.k)
    print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False) if args.json else format_answer(answer))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the web chat and the HTTP API with uvicorn."""
    import uvicorn

    from index.stores.base import store_backend
    from server.api.app import create_app

    settings = _settings(args)
    embedder = _embedder(settings)
    if store_backend(settings).version() is None:
        from index.build import build_from_settings

        print(f"no index in {settings.index_dir} yet: building one from {settings.corpus_dir}", file=sys.stderr)
        summary = build_from_settings(settings, embedder, progress=_build_progress())
        print(f"indexed {summary.added} articles ({summary.chunks_total} chunks) in {summary.seconds:.1f} s", file=sys.stderr)
    uvicorn.run(create_app(settings, embedder=embedder), host=settings.host, port=settings.port)
    return 0


def _settings_help() -> str:
    """The BYLINE_* variables and their descriptions, for --help."""
    lines = ["environment variables (flags override them):"]
    for name, field in Settings.model_fields.items():
        lines.append(f"  BYLINE_{name.upper():<24} {field.description} (default: {field.default})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="byline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index-dir", type=Path, help="index folder (default: BYLINE_INDEX_DIR, else a per-user data folder)")

    p = commands.add_parser("index", parents=[common], help=cmd_index.__doc__)
    p.add_argument("corpus_dir", nargs="?", type=Path, help="folder of articles (default: BYLINE_CORPUS_DIR)")
    p.add_argument("--full", action="store_true", help="re-embed everything instead of only what changed")
    p.add_argument("--json", action="store_true", help="print the build summary as JSON")
    p.add_argument("--watch", action="store_true", help="after building, re-index whenever files in the corpus change")
    p.set_defaults(func=cmd_index)

    p = commands.add_parser("search", parents=[common], help=cmd_search.__doc__)
    p.add_argument("query")
    p.add_argument("--k", type=int)
    p.add_argument("--source", action="append", default=[], help="only this source (repeatable)")
    p.add_argument("--after", help="published on or after this ISO date")
    p.add_argument("--before", help="published on or before this ISO date")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_search)

    p = commands.add_parser("eval", parents=[common], help=cmd_eval.__doc__)
    p.add_argument("--corpus", type=Path, required=True, help="corpus folder or single file")
    p.add_argument("--queries", type=Path, required=True, help="MultiHop-RAG-format query file")
    p.add_argument("--mode", choices=["retrieval", "answer"], default="retrieval")
    p.add_argument("--k", type=int)
    p.add_argument("--limit", type=int, help="evaluate only the first N queries (stratified by type)")
    p.add_argument("--out", type=Path, help="also write the JSON summary here")
    p.add_argument(
        "--variants",
        type=_variants,
        default=("evidence_only", "model"),
        help="answer mode: which answerers to compare, comma-separated (evidence_only: no model call; model: the configured LLM)",
    )
    p.set_defaults(func=cmd_eval)

    p = commands.add_parser("ask", parents=[common], help=cmd_ask.__doc__)
    p.add_argument("question")
    p.add_argument("--k", type=int)
    p.add_argument("--json", action="store_true", help="print the Answer as JSON")
    p.set_defaults(func=cmd_ask)

    p = commands.add_parser(
        "serve",
        parents=[common],
        help=cmd_serve.__doc__,
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--corpus", dest="corpus_dir", type=Path, help="corpus folder that rebuilds read")
    p.add_argument(
        "--watch", action="store_true", default=None, help="rebuild incrementally whenever files in the corpus change"
    )
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `byline` console script."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except BylineError as error:
        print(f"byline: {error}", file=sys.stderr)
        return 1
    except ValidationError as error:
        print(f"byline: bad setting: {settings_problem(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
