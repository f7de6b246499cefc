"""Real files of each new corpus format, written by the libraries that make them (fpdf2, python-docx, warcio)."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

PDF_ARTICLE = (
    "Lumbridge council approves tidal barrage",
    "The Lumbridge town council voted on Monday to build a tidal barrage across the Wend estuary. "
    "The barrage will carry twelve turbines and is expected to power eight thousand homes from 2027. "
    "Fishermen on the estuary asked for a lock so that their boats can still reach the sea at low tide.",
)
DOCX_ARTICLE = (
    "Valdoria orchards report a record quince harvest",
    "Quince growers in the Valdoria valley picked a record 4,200 tonnes this autumn. "
    "A warm spring and late rain doubled the size of the fruit, the growers' cooperative said. "
    "Most of the harvest goes to jam makers in the capital.",
)
RSS_ENTRIES = (
    ("Glacier rail tunnel reopens after avalanche", "https://alpine.example.org/news/tunnel-reopens",
     "Tue, 05 Mar 2024 07:30:00 GMT", "Petra Lindqvist",
     "<p>The Sorn glacier rail tunnel reopened on Tuesday, three weeks after an avalanche buried its northern "
     "portal.</p><p>Engineers cleared 40,000 cubic metres of snow and rebuilt the avalanche gallery.</p>"),
    ("Beekeepers in Montavo count mild-winter losses", "https://alpine.example.org/news/beekeepers",
     "Wed, 06 Mar 2024 09:00:00 GMT", "Jonas Reiter",
     "<p>Beekeepers in Montavo lost a third of their hives over the mild winter, when varroa mites kept "
     "breeding.</p>"),
)
ATOM_ENTRY = (
    "Quillon observatory spots a new comet", "https://skies.example.net/2024/comet-quillon",
    "2024-05-20T22:15:00Z", "Amara Okafor",
    "Astronomers at the Quillon hilltop observatory found a faint new comet in the constellation Lyra. "
    "The comet will pass closest to the sun in November and may be visible with binoculars.",
)
WARC_PAGES = (
    ("https://www.brasknews.example.com/library-hours", "2024-06-03T10:00:00Z",
     "Brask library extends its opening hours",
     "The Brask public library will stay open until ten at night from July, the city said on Monday. "
     "Students had petitioned for longer hours during the exam season, and the city found money for two "
     "extra librarians. The reading room on the top floor will also open on Sundays."),
    ("https://www.brasknews.example.com/ferry-fares", "2024-06-04T11:30:00Z",
     "Orlen ferry fares rise by a fifth",
     "Fares on the Orlen island ferry will rise by twenty per cent in August, the operator announced. "
     "The operator blamed the price of marine diesel and the cost of a new ramp at the island harbour. "
     "Islanders with a resident card will pay the old fare until the end of the year."),
)


def write_pdf(path: Path, title: str = PDF_ARTICLE[0], body: str = PDF_ARTICLE[1]) -> Path:
    """A one-page PDF with a text layer and document information (title, author, creation date)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_author("Mara Quell")
    pdf.set_creation_date(datetime(2024, 3, 18, 9, 30, tzinfo=timezone.utc))
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, title)
    pdf.ln(4)
    pdf.multi_cell(0, 6, body)
    pdf.output(str(path))
    return path


def write_scanned_pdf(path: Path) -> Path:
    """A PDF whose only page is an image: what a scanner makes, with no text layer."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (400, 200), "white")
    ImageDraw.Draw(image).rectangle((20, 20, 380, 60), fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    pdf = FPDF()
    pdf.add_page()
    pdf.image(io.BytesIO(buffer.getvalue()), x=10, y=10, w=180)
    pdf.output(str(path))
    return path


def write_docx(path: Path, *, title_in_properties: bool = True) -> Path:
    """A DOCX article: the title in the core properties (or only as its first heading), author and date set."""
    import docx

    title, body = DOCX_ARTICLE
    document = docx.Document()
    document.core_properties.title = title if title_in_properties else ""
    document.core_properties.author = "Ilse Varga"
    document.core_properties.created = datetime(2024, 10, 2, 8, 0, tzinfo=timezone.utc)
    document.add_heading(title, level=1)
    for sentence_group in body.split(". ", 1):
        document.add_paragraph(sentence_group)
    document.save(str(path))
    return path


def rss_text() -> str:
    """An RSS 2.0 feed of two entries (HTML descriptions, authors, dates)."""
    from html import escape

    items = "".join(
        f"<item><title>{escape(title)}</title><link>{link}</link><pubDate>{date}</pubDate>"
        f"<dc:creator>{author}</dc:creator><description>{escape(body)}</description></item>"
        for title, link, date, author, body in RSS_ENTRIES
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<channel><title>Alpine Courier</title><link>https://alpine.example.org/</link>{items}</channel></rss>"
    )


def atom_text() -> str:
    """An Atom feed of one entry whose body is in <content>."""
    title, link, date, author, body = ATOM_ENTRY
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>Night Skies Weekly</title><id>urn:skies</id><updated>2024-05-21T00:00:00Z</updated>"
        f'<entry><title>{title}</title><link href="{link}"/><id>{link}</id><updated>{date}</updated>'
        f"<published>{date}</published><author><name>{author}</name></author>"
        f'<summary>Short.</summary><content type="html">&lt;p&gt;{body}&lt;/p&gt;</content></entry></feed>'
    )


def write_warc(path: Path) -> Path:
    """A WARC (gzipped if the name ends .gz) with a warcinfo record, two HTML pages and a PNG image response."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as output:
        writer = WARCWriter(output, gzip=path.name.endswith(".gz"))
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "byline tests"}))
        for uri, date, title, body in WARC_PAGES:
            html = (
                f"<html><head><title>{title}</title></head><body><nav>Home | Sport | Weather</nav>"
                f"<article><h1>{title}</h1><p>{body}</p></article><footer>Copyright</footer></body></html>"
            ).encode()
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                uri, "response", payload=io.BytesIO(html), http_headers=headers, warc_headers_dict={"WARC-Date": date}
            ))
        image = StatusAndHeaders("200 OK", [("Content-Type", "image/png")], protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(
            "https://www.brasknews.example.com/logo.png", "response", payload=io.BytesIO(b"\x89PNG\r\n\x1a\nfake"),
            http_headers=image,
        ))
    return path


def write_newsroom(folder: Path) -> Path:
    """A corpus folder with one file of each new format (plus a scanned PDF and a .xyz file nobody reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_pdf(folder / "barrage.pdf")
    write_scanned_pdf(folder / "scan.pdf")
    write_docx(folder / "quince.docx")
    (folder / "alpine.rss").write_text(rss_text(), encoding="utf-8")
    (folder / "skies.atom").write_text(atom_text(), encoding="utf-8")
    write_warc(folder / "crawl.warc.gz")
    (folder / "notes.xyz").write_text("not an article format", encoding="utf-8")
    return folder
