"""Who may connect to the OPC UA server, over what, and what each refusal leaves in the audit trail.

Rules (what an OT security review of a cell controller expects):

- one endpoint, ``Basic256Sha256`` **SignAndEncrypt**; its certificate and key are made on first use
  (asyncua's own helper, RSA 2048, one year) and reused after, so a client pins the same certificate;
- no anonymous sessions: a user name and password from the journal's user book
  (:mod:`microfactory.access.users`: scrypt hashes, lock-out after five wrong passwords, deactivated and
  locked users refused); a user whose password must change first is refused until it is changed;
- roles that may run lots (operator, engineer) may call the PackML commands; the other roles (quality,
  admin) may browse, read and subscribe, never command;
- with a trust list (``serve opcua --trust DIR``) only the client certificates in it may open a session;
- a session over an unsigned channel, an untrusted client certificate, an anonymous or unknown token,
  a wrong password: the session is refused with a Bad status and an ``opcua_refused`` record (who,
  why, from where) is chained into the journal's audit trail. Wrong passwords of known users also
  count towards their lock-out (``signin_failed`` records, as at any other sign-in).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import SimpleRoleRuleset, User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.internal_session import InternalSession
from asyncua.server.user_managers import UserManager
from cryptography.x509.oid import ExtendedKeyUsageOID

from microfactory.access.users import Permission, UserBook
from microfactory.engine.journal import Journal
from microfactory.errors import AccessDenied

log = logging.getLogger("microfactory.opcua")

KEY_FILE = "opcua-server-key.pem"
CERT_FILE = "opcua-server-cert.der"

#: Requests a read-only user may send (browse, read, subscribe); Call and Write are not among them.
_READ_ONLY = frozenset(ua.NodeId(ua.Int32(i)) for i in (
    ua.ObjectIds.CreateSessionRequest_Encoding_DefaultBinary,
    ua.ObjectIds.CloseSessionRequest_Encoding_DefaultBinary,
    ua.ObjectIds.ActivateSessionRequest_Encoding_DefaultBinary,
    ua.ObjectIds.ReadRequest_Encoding_DefaultBinary,
    ua.ObjectIds.BrowseRequest_Encoding_DefaultBinary,
    ua.ObjectIds.BrowseNextRequest_Encoding_DefaultBinary,
    ua.ObjectIds.GetEndpointsRequest_Encoding_DefaultBinary,
    ua.ObjectIds.FindServersRequest_Encoding_DefaultBinary,
    ua.ObjectIds.TranslateBrowsePathsToNodeIdsRequest_Encoding_DefaultBinary,
    ua.ObjectIds.CreateSubscriptionRequest_Encoding_DefaultBinary,
    ua.ObjectIds.ModifySubscriptionRequest_Encoding_DefaultBinary,
    ua.ObjectIds.DeleteSubscriptionsRequest_Encoding_DefaultBinary,
    ua.ObjectIds.CreateMonitoredItemsRequest_Encoding_DefaultBinary,
    ua.ObjectIds.ModifyMonitoredItemsRequest_Encoding_DefaultBinary,
    ua.ObjectIds.DeleteMonitoredItemsRequest_Encoding_DefaultBinary,
    ua.ObjectIds.PublishRequest_Encoding_DefaultBinary,
    ua.ObjectIds.RepublishRequest_Encoding_DefaultBinary,
    ua.ObjectIds.SetMonitoringModeRequest_Encoding_DefaultBinary,
    ua.ObjectIds.SetPublishingModeRequest_Encoding_DefaultBinary,
    ua.ObjectIds.RegisterNodesRequest_Encoding_DefaultBinary,
    ua.ObjectIds.UnregisterNodesRequest_Encoding_DefaultBinary,
    ua.ObjectIds.CloseSecureChannelRequest_Encoding_DefaultBinary,
))
_COMMANDING = frozenset({ua.NodeId(ua.Int32(ua.ObjectIds.CallRequest_Encoding_DefaultBinary))})


@dataclass
class CellUser(User):
    """A signed-in user of the journal; ``may_command`` when the role may run lots."""

    may_command: bool = False


async def certificate(directory: Path, *, app_uri: str, host: str) -> tuple[Path, Path]:
    """The server's key (PEM) and certificate (DER) in ``directory``, made on first use, reused after
    (a new one only when it is missing, expired or names another application URI or host)."""
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / KEY_FILE, directory / CERT_FILE
    made = not (key.exists() and cert.exists())
    await cert_gen.setup_self_signed_certificate(
        key, cert, app_uri, host, [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        {"countryName": "CH", "organizationName": "microfactory", "commonName": f"microfactory {app_uri}"})
    key.chmod(0o600)
    if made:
        log.warning("OPC UA: made a new server certificate %s (clients must trust it)", cert)
    return key, cert


def _iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class AuditTrail:
    """Chains each refused connection into the journal's audit trail (``opcua_refused``)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        #: The client address of the session being activated (set around activation, on the server's
        #: one loop thread), so the user manager's refusals name it too.
        self.peer = ""

    def refused(self, reason: str, *, user: str = "", peer: str = "") -> None:
        peer = peer or self.peer
        log.warning("OPC UA session refused (%s) user=%r peer=%s", reason, user, peer or "?")
        self.journal.audited(lambda db: None, "opcua_refused",
                             {"reason": reason, "user": user, "peer": peer, "at": _iso()})


class CellUsers(UserManager):
    """asyncua's user manager over the journal's user book."""

    def __init__(self, journal: Journal, trail: AuditTrail) -> None:
        self.book = UserBook(journal)
        self.trail = trail

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if not username:
            self.trail.refused("anonymous or certificate token (a user name and password are required)")
            return None
        try:
            user = self.book.check_password(username, password or "")
        except AccessDenied as exc:
            self.trail.refused(f"sign-in refused: {exc.message}", user=username)
            return None
        if user.must_change:
            self.trail.refused("the user must change the password first", user=username)
            return None
        return CellUser(role=UserRole.User, name=user.id, may_command=user.may(Permission.RUN_LOT))


class CellRules(SimpleRoleRuleset):
    """Read-only for every signed-in user; PackML commands (Call) for the roles that may run lots."""

    def check_validity(self, user: Any, action_type: Any, body: Any) -> bool:
        if not isinstance(user, CellUser):  # anonymous (never activated here): nothing at all
            return False
        return action_type in _READ_ONLY or (user.may_command and action_type in _COMMANDING)


def client_validator(folder: Path, trail: AuditTrail) -> Callable[[Any, Any], Awaitable[None]]:
    """Accept only client certificates found in ``folder`` (DER or PEM files; asyncua's TrustStore),
    valid now, naming the client's application URI and made for a client; audit each refusal."""
    store = TrustStore([folder], [])
    options = (CertificateValidatorOptions.TIME_RANGE | CertificateValidatorOptions.URI
               | CertificateValidatorOptions.EXT_KEY_USAGE | CertificateValidatorOptions.TRUSTED
               | CertificateValidatorOptions.PEER_CLIENT)
    validator = CertificateValidator(options, store)
    loaded = [False]

    async def validate(certificate: Any, application: Any) -> None:
        if not loaded[0]:
            await store.load_trust()
            loaded[0] = True
        try:
            await validator.validate(certificate, application)
        except ServiceError as exc:
            name = ua.StatusCode(ua.UInt32(exc.code)).name
            trail.refused(f"client certificate refused ({name}): {certificate.subject.rfc4514_string()}, "
                          f"application {application.ApplicationUri}")
            raise

    return validate


class SignedSession(InternalSession):
    """An asyncua session that refuses to activate over a channel that is not signed and encrypted.

    asyncua keeps a SecurityPolicy None channel open for discovery (GetEndpoints) even when no None
    endpoint is offered, and would activate a session on it: here the channel's peer certificate (there
    is none on an unsigned channel) decides, before any user token is looked at.
    """

    trail: AuditTrail

    async def create_session(self, params: Any, sockname: Any = None) -> Any:
        self.trail.peer = str(self.name)
        try:
            return await super().create_session(params, sockname=sockname)
        finally:
            self.trail.peer = ""

    def activate_session(self, params: Any, peer_certificate: Any) -> Any:
        self.trail.peer = str(self.name)  # an external session's name is the client's address
        try:
            if not peer_certificate:  # b'' on a SecurityPolicy None channel
                token = params.UserIdentityToken
                user = getattr(token, "UserName", "") or ""
                self.trail.refused("unsigned connection (the endpoint is Basic256Sha256 SignAndEncrypt "
                                   "only)", user=str(user))
                raise ua.uaerrors.BadSecurityModeRejected
            return super().activate_session(params, peer_certificate)
        finally:
            self.trail.peer = ""


def guard_sessions(iserver: Any, trail: AuditTrail) -> None:
    """Make ``iserver`` (asyncua's InternalServer) create :class:`SignedSession` sessions."""
    def create_session(name: str, user: User = User(role=UserRole.Anonymous),  # noqa: B008
                       external: bool = False) -> InternalSession:
        session = SignedSession(iserver, iserver.aspace, iserver.subscription_service, name, user=user,
                                external=external)
        session.trail = trail
        return session

    iserver.create_session = create_session


def host_of(endpoint: str) -> str:
    """The host name the certificate names: the machine's (what clients check it against), except for
    an endpoint that names another host explicitly."""
    from urllib.parse import urlparse

    host = urlparse(endpoint).hostname or "localhost"
    local = host in ("0.0.0.0", "::", "localhost") or host.startswith("127.")
    return socket.gethostname() if local else host
