"""Browse the cell's PackML objects over OPC UA and print the tree with each variable's value.

    python examples/opcua_browse.py opc.tcp://127.0.0.1:4840 --user olga \
        --pki client-pki [--call Hold]

The password is asked (or read from standard input). The client makes its own key and certificate in
``--pki`` on first use and connects with Basic256Sha256 SignAndEncrypt, the server's only endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path

from asyncua import Client, Node, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography.x509.oid import ExtendedKeyUsageOID

PACKML = "http://opcfoundation.org/UA/PackML/"
APP_URI = "urn:microfactory:example-client"


async def tree(node: Node, depth: int = 0, max_depth: int = 4) -> None:
    name = await node.read_browse_name()
    if name.Name in ("InputArguments", "OutputArguments"):
        return
    klass = await node.read_node_class()
    line = f"{'  ' * depth}{name.NamespaceIndex}:{name.Name}"
    if klass == ua.NodeClass.Variable:
        value = await node.read_value()
        line += f" = {value.Text if isinstance(value, ua.LocalizedText) else value!r}"
    elif klass == ua.NodeClass.Method:
        line += "()"
    print(line)
    if depth < max_depth:
        for child in await node.get_children():
            await tree(child, depth + 1, max_depth)


async def main(url: str, user: str, password: str, pki: Path, call: str | None) -> int:
    pki.mkdir(parents=True, exist_ok=True)
    key, cert = pki / "client-key.pem", pki / "client-cert.der"
    await cert_gen.setup_self_signed_certificate(key, cert, APP_URI, "localhost",
                                                 [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": APP_URI})
    client = Client(url)
    client.application_uri = APP_URI
    client.set_user(user)
    client.set_password(password)
    await client.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key),
                              mode=ua.MessageSecurityMode.SignAndEncrypt)
    async with client:
        pk = await client.get_namespace_index(PACKML)
        root = await client.nodes.objects.get_child(f"{pk}:PackMLObjects")
        print(f"ns {pk} = {PACKML}")
        await tree(root)
        if call:
            for cell in await root.get_children():
                machine = await cell.get_child(f"{pk}:BaseStateMachine")
                request = ua.CallMethodRequest()
                request.ObjectId = machine.nodeid
                request.MethodId = (await machine.get_child(f"{pk}:{call}")).nodeid
                result = (await client.uaclient.call([request]))[0]
                answer = result.OutputArguments[0].Value if result.OutputArguments else ""
                if not result.StatusCode.is_good():  # the engine's refusal is the Result argument
                    print(f"{call} refused ({result.StatusCode.name}): {answer}", file=sys.stderr)
                    return 1
                print(f"{call}: {answer}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--user", required=True)
    parser.add_argument("--pki", type=Path, default=Path("client-pki"))
    parser.add_argument("--call", help="a PackML command to call on the cell (Hold, Unhold, Stop, ...)")
    args = parser.parse_args()
    secret = getpass.getpass(f"password for {args.user}: ") if sys.stdin.isatty() \
        else sys.stdin.readline().strip()
    sys.exit(asyncio.run(main(args.url, args.user, secret, args.pki, args.call)))
