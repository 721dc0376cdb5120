"""The certificate signer: the only long-running process that reads the CA key.

The internet-facing API asks it, over a Unix socket in the state directory (mode 0600), to
"sign this CSR for this device id with this validity" and gets the certificate back; it refuses
anything else. See protocol.py for the wire format, server.py for what it accepts.
"""

from .client import SignerClient
from .server import SignerServer

__all__ = ["SignerClient", "SignerServer"]
