"""Certificates and keys for OPC UA security, read from PEM or DER whatever the file is called."""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

_PEM_MARKER = b"-----BEGIN"


def certificate_der(data: bytes) -> bytes:
    """The DER form of a PEM or DER X.509 certificate; ValueError when it is neither."""
    try:
        if _PEM_MARKER in data:
            certificate = x509.load_pem_x509_certificate(data)
        else:
            certificate = x509.load_der_x509_certificate(data)
    except ValueError:
        raise ValueError("not a PEM or DER X.509 certificate") from None
    return certificate.public_bytes(serialization.Encoding.DER)


def private_key_der(data: bytes) -> bytes:
    """The unencrypted PKCS#8 DER form of a PEM or DER private key; ValueError when it is neither."""
    try:
        if _PEM_MARKER in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except TypeError:
        raise ValueError("the private key is encrypted; the agent needs it unencrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("not a PEM or DER private key") from None
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def application_uri(certificate: bytes) -> str | None:
    """The application URI an OPC UA certificate names (its first URI subject alternative name)."""
    try:
        names = x509.load_der_x509_certificate(certificate).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
    except x509.ExtensionNotFound:
        return None
    uris = names.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None
