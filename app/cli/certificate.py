"""`packproof certificate PACK|SHIPMENT --out FILE`: a condition certificate (issue 18), from the store or --api.

The format follows the file name: `.json` (what `packproof verify --certificate` checks offline),
`.html` (a self-contained printable page), `.pdf`, `.passport.json` (the battery-passport export);
`--format` overrides it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from packproof.app.cli.common import HANDOVER_WINDOW, Exit, data_dir_of, fail, out
from packproof.app.config import Settings
from packproof.app.options import COMMON, configured

FORMATS = ("json", "html", "pdf", "passport")


def format_of(path: Path, given: str | None) -> str:
    if given is not None:
        if given not in FORMATS:
            fail(Exit.BAD_INPUT, f"--format {given!r}: one of {', '.join(FORMATS)}")
        return given
    name = path.name.lower()
    if name.endswith(".passport.json"):
        return "passport"
    for fmt in ("json", "html", "pdf"):
        if name.endswith(f".{fmt}"):
            return fmt
    fail(Exit.BAD_INPUT, f"--out {path}: name it .json, .html, .pdf or .passport.json (or give --format)")


def render(cert: Any, fmt: str, link: str | None) -> bytes:
    if fmt == "html":
        from packproof.api.certificate.html import certificate_html  # not at start-up: the renderers

        return certificate_html(cert, link).encode()
    if fmt == "pdf":
        from packproof.api.certificate.pdf import certificate_pdf  # not at start-up: fpdf2

        return certificate_pdf(cert, link)
    if fmt == "passport":
        import orjson  # not at start-up

        from packproof.api.certificate.passport import passport_export  # not at start-up

        return orjson.dumps(passport_export(cert), option=orjson.OPT_INDENT_2)
    text: str = cert.model_dump_json()
    return text.encode()


def _from_api(api: str, target: str) -> tuple[Any, str]:
    import httpx  # not at start-up: httpx

    from packproof.api.certificate.document import parse_certificate  # not at start-up: pydantic models

    base = api.rstrip("/")
    with httpx.Client(timeout=120) as client:
        for kind in ("packs", "shipments"):
            url = f"{base}/{kind}/{target}/certificate?format=json"
            try:
                r = client.get(url)
            except httpx.HTTPError as exc:
                fail(Exit.UNREACHABLE, f"cannot reach the API at {url}: {exc}")
            if r.status_code == 404:
                continue
            if r.status_code != 200:
                fail(Exit.UNREACHABLE if r.status_code >= 500 else Exit.BAD_INPUT,
                     f"{url} answered {r.status_code}: {r.text[:200]}")
            try:
                return parse_certificate(r.content), url
            except ValueError as exc:
                fail(Exit.UNREACHABLE, f"{url} did not answer a certificate: {exc}")
    fail(Exit.BAD_INPUT, f"{target!r} is neither a pack nor a shipment the API at {base} knows")


@configured("certificate", (*COMMON, HANDOVER_WINDOW))
def certificate(
    cfg: Settings,
    target: Annotated[str, typer.Argument(help="A pack (its tracker's device id) or a shipment id.")],
    out_file: Annotated[Path, typer.Option("--out", help="Where to write it: .json, .html, .pdf or "
                                                          ".passport.json.")],
    fmt: Annotated[str | None, typer.Option("--format", help="json, html, pdf or passport (default: from --out).")]
    = None,
    api: Annotated[str | None, typer.Option("--api", help="Fetch it from this packproof API instead of the "
                                                          "store.")] = None,
) -> None:
    """A condition certificate: verdict per UN 38.3 test and overall, figures, excursions, completeness,
    custody, bound to a signed log checkpoint; `packproof verify --certificate FILE.json` checks it offline."""
    kind = format_of(out_file, fmt)
    if api is not None:
        cert, link = _from_api(api, target)
    else:
        cert, link = _from_store(cfg, target), None
    try:
        out_file.write_bytes(render(cert, kind, link))
    except OSError as exc:
        fail(Exit.BAD_INPUT, f"cannot write {out_file}: {exc.strerror or exc}")
    packs = [cert] if getattr(cert, "kind", "") == "pack" else cert.packs
    verdict = packs[0].claims.overall.verdict if len(packs) == 1 else cert.verdict
    out.print(f"{target}: {verdict} ({len(packs)} pack(s)); {kind} written to {out_file}", highlight=False)


def _from_store(cfg: Settings, target: str) -> Any:
    from packproof.api.certificate.build import (  # not at start-up: every stage
        NoCertificate,
        pack_certificate,
        shipment_certificate,
    )
    from packproof.api.main import ledger_public_key  # not at start-up: the API
    from packproof.app.services import handover_window_of, profiles_from  # not at start-up: every stage
    from packproof.errors import ConfigError  # not at start-up
    from packproof.store import Store  # not at start-up: db drivers

    dirs = data_dir_of(cfg)
    try:
        key = ledger_public_key(dirs)
    except ConfigError as exc:
        fail(Exit.BAD_INPUT, str(exc))
    window = handover_window_of(cfg, dirs)
    profiles = profiles_from(cfg.ingest.profiles)

    async def go() -> Any:
        store = await Store.open(dirs.store, readonly=True)
        try:
            if await store.device(target) is not None:
                return await pack_certificate(store, target, key, time.time(), profiles, window)
            return await shipment_certificate(store, target, key, time.time(), profiles, window)
        except NoCertificate as exc:
            fail(Exit.BAD_INPUT, str(exc))
        finally:
            await store.close()

    return asyncio.run(go())
