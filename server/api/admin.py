"""The admin page and its endpoints, all behind BYLINE_ADMIN_TOKEN (a header, or the login form's cookie).

/admin lists the indexed articles with search and paging (server-rendered); static/admin.js uploads files,
deletes an article's file, starts a rebuild and polls GET /api/index/status. The logic lives in index/archive.py.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from index.archive import delete_article_file, list_articles, save_upload
from index.errors import UploadRefused, UploadTooLarge
from server.api.auth import require_admin
from server.api.html import templates
from server.api.routes import find_article
from server.api.schemas import ErrorBody, error_responses

router = APIRouter(dependencies=[Depends(require_admin)], tags=["admin"], responses=error_responses(401, 403, 422))
PAGE_SIZE = 25
UPLOAD_ERRORS = {
    400: {"model": ErrorBody, "description": "A name holding a path or starting with a dot, an unsupported type, "
                                             "or a file nothing can be indexed from (the reasons named)."},
    409: {"model": ErrorBody, "description": "A file of that name is in the corpus folder; send replace=true."},
    413: {"model": ErrorBody, "description": "The file is over BYLINE_MAX_FILE_BYTES."},
}


def page_links(offset: int, limit: int, total: int) -> dict:
    """Offsets of the previous and next pages (None at either end) and the 1-based range shown.

    >>> page_links(25, 25, 60)
    {'previous': 0, 'next': 50, 'first': 26, 'last': 50}
    """
    return {
        "previous": max(0, offset - limit) if offset > 0 else None,
        "next": offset + limit if offset + limit < total else None,
        "first": min(offset + 1, total),
        "last": min(offset + limit, total),
    }


@router.get("/admin", response_class=HTMLResponse, include_in_schema=False)
async def admin_page(request: Request, q: str = Query("", max_length=200), offset: int = Query(0, ge=0)):
    page = list_articles(request.app.state.searcher, offset, PAGE_SIZE, q.strip())
    context = {"page": page, "q": q, "links": page_links(offset, PAGE_SIZE, page.total),
               "max_bytes": request.app.state.settings.max_file_bytes}
    return templates.TemplateResponse(request, "admin.html", context)


@router.get("/api/admin/articles", summary="A page of the indexed articles (title, source, date, file)")
async def articles(request: Request, q: str = Query("", max_length=200), offset: int = Query(0, ge=0),
                   limit: int = Query(PAGE_SIZE, ge=1, le=200)):
    page = list_articles(request.app.state.searcher, offset, limit, q.strip())
    return {"total": page.total, "offset": offset, "limit": limit, "articles": [asdict(a) for a in page.articles]}


@router.post("/api/admin/upload", status_code=201, summary="Put one article file into the corpus folder",
             responses=UPLOAD_ERRORS)
async def upload(request: Request, file: UploadFile, replace: bool = Query(False)):
    settings = request.app.state.settings
    limits = settings.corpus_limits()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_file_bytes + 64_000:  # refused before reading the body
        raise UploadTooLarge(f"the upload is {int(declared):,} bytes, over the {limits.max_file_bytes:,}-byte limit")
    if not file.filename:
        raise UploadRefused("the upload has no file name")
    data = await file.read(limits.max_file_bytes + 1)
    saved = await run_in_threadpool(save_upload, settings.corpus_dir, file.filename, data, limits=limits, replace=replace)
    return asdict(saved)


@router.delete("/api/admin/articles/{article_id}/file", summary="Delete the file an article came from",
               responses=error_responses(404))
async def delete_file(request: Request, article_id: str):
    article = find_article(request.app.state.searcher, article_id)
    return {"deleted": delete_article_file(request.app.state.settings.corpus_dir, article)}
