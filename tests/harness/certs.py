"""Self-signed certificates for one IP address, for the servers the tests run over TLS.

`SelfSigned(host, directory, common_name)` writes `cert.pem` and `key.pem` (P-256, PKCS#8)
into `directory`: a CA certificate (so a client can trust it directly, as its own anchor)
whose subject alternative name is the IP address `host`, valid from an hour before now for a
day. The clients trust it through a context made for it, never by turning verification off.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["SelfSigned"]


class SelfSigned:
    """A self-signed certificate for `host` and its key, as PEM files in `directory`."""

    def __init__(self, host: str, directory: Path, common_name: str) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.UTC)
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        self.pem = cert.public_bytes(serialization.Encoding.PEM)
        self.cert_path = directory / "cert.pem"
        self.key_path = directory / "key.pem"
        self.cert_path.write_bytes(self.pem)
        self.key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate (and nothing else), hostname checked."""
        return ssl.create_default_context(cadata=self.pem.decode())

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context
