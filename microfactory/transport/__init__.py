"""Serial transport: finding ports, an async line transport over pyserial, and byte traces."""

from microfactory.transport.line import LineTransport
from microfactory.transport.ports import PortInfo, list_ports, resolve_port
from microfactory.transport.trace import ByteTrace

__all__ = ["ByteTrace", "LineTransport", "PortInfo", "list_ports", "resolve_port"]
