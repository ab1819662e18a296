"""`/packs/{device_id}/certificate`, `/shipments/{id}/certificate`: condition certificates (issue 18).

The format is `?format=json|html|pdf|passport`, else the `Accept` header (text/html, application/pdf),
else JSON. The JSON is what `packproof verify --certificate FILE` checks offline; the HTML and PDF
carry a QR code of the JSON's address.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from packproof.api.certificate.build import NoCertificate, pack_certificate, shipment_certificate
from packproof.api.certificate.document import PackCertificate, ShipmentCertificate
from packproof.api.deps import SettingsDep, StoreDep
from packproof.edge.thresholds import BUILTIN_PROFILES

router = APIRouter(tags=["certificates"])
Format = Literal["json", "html", "pdf", "passport"]


def _format(request: Request, asked: Format | None) -> Format:
    if asked is not None:
        return asked
    accept = request.headers.get("accept", "")
    if "application/pdf" in accept:
        return "pdf"
    if "text/html" in accept:
        return "html"
    return "json"


async def _answer(request: Request, cert: PackCertificate | ShipmentCertificate, fmt: Format) -> Response:
    """The document in `fmt`, drawn in a worker thread: a long pack takes seconds the loop must not wait."""
    return await asyncio.to_thread(_render, str(request.url.include_query_params(format="json")), cert, fmt)


def _render(link: str, cert: PackCertificate | ShipmentCertificate, fmt: Format) -> Response:
    if fmt == "html":
        from packproof.api.certificate.html import certificate_html  # not at start-up: drawn only when asked

        return HTMLResponse(certificate_html(cert, link))
    if fmt == "pdf":
        from packproof.api.certificate.pdf import certificate_pdf  # not at start-up: fpdf2

        name = cert.subject.device_id if isinstance(cert, PackCertificate) else cert.shipment_id
        return Response(certificate_pdf(cert, link), media_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="certificate-{name}.pdf"'})
    if fmt == "passport":
        from packproof.api.certificate.passport import passport_export  # not at start-up: asked rarely

        return Response(orjson.dumps(passport_export(cert)), media_type="application/json")
    return Response(cert.model_dump_json(), media_type="application/json")


@router.get("/packs/{device_id}/certificate")
async def get_pack_certificate(request: Request, store: StoreDep, settings: SettingsDep, device_id: str,
                               format: Format | None = None) -> Response:  # noqa: A002 - the query's name
    """The pack's condition certificate: every claim checkable offline with `packproof verify --certificate`."""
    fmt = _format(request, format)
    try:
        cert = await pack_certificate(store, device_id, request.app.state.ledger_public_key, time.time(),
                                      BUILTIN_PROFILES, settings.handover_window_s)
    except NoCertificate as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return await _answer(request, cert, fmt)


@router.get("/shipments/{shipment_id}/certificate")
async def get_shipment_certificate(request: Request, store: StoreDep, settings: SettingsDep, shipment_id: str,
                                   format: Format | None = None) -> Response:  # noqa: A002
    """The certificates of every pack of the shipment in one document, with the worst verdict."""
    fmt = _format(request, format)
    try:
        cert = await shipment_certificate(store, shipment_id, request.app.state.ledger_public_key, time.time(),
                                          BUILTIN_PROFILES, settings.handover_window_s)
    except NoCertificate as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return await _answer(request, cert, fmt)
