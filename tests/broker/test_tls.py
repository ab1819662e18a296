"""TLS on the embedded broker's listener when a certificate is given: the ingestor connects
over TLS trusting that certificate; a plain-text client gets nowhere."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from packproof.broker.embedded import EmbeddedBroker
from packproof.edge.ingestor import Ingestor
from packproof.edge.options import MqttOptions
from packproof.errors import ConfigError
from packproof.net import free_port
from packproof.store import Store


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "broker.crt", tmp / "broker.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_tls_listener(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    async with EmbeddedBroker(port=port, tls=(cert, key)):
        store = await Store.open(tmp_path / "p.db")
        ing = Ingestor(store, MqttOptions(port=port, client_id="ing-tls", tls_ca=str(cert)))
        await ing.connect()  # the TLS handshake and CONNACK succeed
        ing.subscriber.client.disconnect()
        ing.subscriber.client.loop_stop()
        await store.close()

        plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="plain")
        connected = threading.Event()
        plain.on_connect = lambda *a: connected.set()
        plain.connect("127.0.0.1", port)
        plain.loop_start()
        assert not await asyncio.to_thread(connected.wait, 2)  # no CONNACK without TLS
        plain.loop_stop()


def test_missing_tls_files_are_named(tmp_path: Path) -> None:
    from packproof.broker.embedded import broker_config

    with pytest.raises(ConfigError, match=r"TLS file .*nope.crt does not exist"):
        broker_config("127.0.0.1", 1, tls=(tmp_path / "nope.crt", tmp_path / "nope.key"))
