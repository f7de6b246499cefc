"""The jinja2 templates of the server-rendered pages, autoescaped: article text is untrusted."""

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader

from server.settings import REPO_ROOT

templates = Jinja2Templates(env=Environment(loader=FileSystemLoader(REPO_ROOT / "templates"), autoescape=True))
