"""Encryption of everything the services put into Temporal, so histories hold no address or payment in the clear.

Every payload (workflow and activity inputs and results, signals, updates, queries, memos) and every failure
message is sealed with AES-256-GCM under PAYLOAD_KEY before it leaves the process.

    python -m common.codec new-key             a fresh key for PAYLOAD_KEY

Whoever holds the key reads a history back the Temporal way: through the codec server
(common/codec_server.py) behind the Web UI and `temporal workflow show --codec-endpoint`.
"""

import base64
import dataclasses
import hashlib
import logging
import os
import sys
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter, DefaultFailureConverter, PayloadCodec, PayloadConverter
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

log = logging.getLogger(__name__)
ENCODING = b"binary/encrypted"
NONCE_BYTES = 12


class EncryptionCodec(PayloadCodec):
    def __init__(self, key: bytes):
        if len(key) != 32:
            raise ValueError(f"PAYLOAD_KEY must be 32 bytes, base64-encoded; got {len(key)} bytes")
        self.aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:16].encode()

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._open(p) for p in payloads]

    def _seal(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self.aead.encrypt(nonce, payload.SerializeToString(), self.key_id)
        return Payload(metadata={"encoding": ENCODING, "encryption-key-id": self.key_id}, data=nonce + sealed)

    def _open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption was switched on
        key_id = payload.metadata.get("encryption-key-id", b"")
        if key_id != self.key_id:
            raise ValueError(f"payload sealed with key {key_id.decode()!r}; PAYLOAD_KEY is {self.key_id.decode()!r}")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        return Payload.FromString(self.aead.decrypt(nonce, sealed, self.key_id))


def key_from_env() -> bytes | None:
    text = os.environ.get("PAYLOAD_KEY", "").strip()
    if not text:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise SystemExit("PAYLOAD_KEY is not base64 (python -m common.codec new-key makes one)") from None


class FailureConverter(DefaultFailureConverter):
    """Temporal's, except that a BENIGN ApplicationError (an expected failure: the flaky vendor's, see
    common.attempts.call_stub) goes without its Python traceback. Its type and message say what happened, and
    formatting a traceback for every failed attempt was a twentieth of a worker's CPU."""

    seal_message = False

    def __init__(self) -> None:
        super().__init__(encode_common_attributes=self.seal_message)

    def to_failure(self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure) -> None:
        if isinstance(exception, ApplicationError) and exception.category == ApplicationErrorCategory.BENIGN:
            exception.__traceback__ = None
        super().to_failure(exception, payload_converter, failure)


class SealedFailureConverter(FailureConverter):
    """The same, with the message and traceback moved into the failure's encoded attributes, which the codec seals."""

    seal_message = True


def data_converter(key: bytes | None = None) -> DataConverter:
    """The converter every client, worker and replayer of the project uses: sealed when a key is set."""
    key = key if key is not None else key_from_env()
    if key is None:
        log.warning("payload_encryption_off", extra={"fields": {"hint": "set PAYLOAD_KEY to seal histories"}})
        return dataclasses.replace(DataConverter.default, failure_converter_class=FailureConverter)
    return dataclasses.replace(
        DataConverter.default,
        payload_codec=EncryptionCodec(key),
        failure_converter_class=SealedFailureConverter,
    )


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


if __name__ == "__main__":
    if sys.argv[1:2] == ["new-key"]:
        print(new_key())
    else:
        raise SystemExit(__doc__)
