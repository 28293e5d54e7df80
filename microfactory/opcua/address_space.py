"""The PackML objects of OPC 30050, built in code: one for the cell, one for each station.

Why built in code and not loaded from the official ``Opc.Ua.PackML.NodeSet2.xml``: no package registry
this project installs from ships that file, so loading it would mean fetching it from the web at setup
(a build that breaks offline and a file nobody reviews with the code). The browse names, their
namespace (``http://opcfoundation.org/UA/PackML/``) and the tree are those of the specification; what
differs is written in ``docs/opcua.md`` (counts and the stop reason are scalars, not the spec's
structures; the commands of the nested Machine/Execute state machines sit on ``BaseStateMachine``).

Layout (``pk:`` the PackML namespace, ``mf:`` this cell's)::

    Objects/pk:PackMLObjects/mf:<cell>            PackMLBaseObjectType-like
        pk:TagID, pk:PackMLVersion                properties
        pk:Status/      StateCurrent, UnitModeCurrent, MachSpeed, CurMachSpeed, EquipmentBlocked,
                        EquipmentStarved
        pk:Admin/       ProdProcessedCount, ProdDefectiveCount, StopReason, StateCurrentTime,
                        StateCumulativeTime[18], MachDesignSpeed
        pk:BaseStateMachine/  CurrentState (+ Number), the command methods (cell only)
        pk:SetUnitMode(UnitMode: Int32)           (cell only)
        mf:<station>/   the same Status/Admin/BaseStateMachine, read only
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from asyncua import Node, Server, ua

from microfactory.engine.packml import Command
from microfactory.opcua import model

#: A method's callback: (object node id, *input variants) → output variants or a CallMethodResult.
MethodCallback = Callable[..., Awaitable[Any]]

PACKML_VERSION = "PackTags v3 (OPC 30050 1.01 browse names)"


@dataclass
class PackMLNodes:
    """The variable nodes of one PackML object, by browse name (``Status.StateCurrent`` ...)."""

    node: Node
    variables: dict[str, Node] = field(default_factory=dict)
    types: dict[str, ua.VariantType] = field(default_factory=dict)
    #: The last value written to each variable (the server writes only changes).
    written: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, path: str) -> Node:
        return self.variables[path]


_STATUS: tuple[tuple[str, Any, ua.VariantType], ...] = (
    ("StateCurrent", 0, ua.VariantType.Int32),
    ("UnitModeCurrent", 1, ua.VariantType.Int32),
    ("MachSpeed", 0.0, ua.VariantType.Float),
    ("CurMachSpeed", 0.0, ua.VariantType.Float),
    ("EquipmentBlocked", False, ua.VariantType.Boolean),
    ("EquipmentStarved", False, ua.VariantType.Boolean),
)
_ADMIN: tuple[tuple[str, Any, ua.VariantType], ...] = (
    ("ProdProcessedCount", 0, ua.VariantType.Int32),
    ("ProdDefectiveCount", 0, ua.VariantType.Int32),
    ("StopReason", "", ua.VariantType.String),
    ("StateCurrentTime", 0, ua.VariantType.Int32),
    ("StateCumulativeTime", [0] * (max(model.STATE_NUMBERS.values()) + 1), ua.VariantType.Int32),
    ("MachDesignSpeed", 0.0, ua.VariantType.Float),
)


class AddressSpace:
    """Builds the PackML tree on an asyncua ``Server`` (on the server's own loop)."""

    def __init__(self, server: Server, packml_ns: int, cell_ns: int) -> None:
        self.server = server
        self.pk = packml_ns
        self.mf = cell_ns

    def _id(self, path: str) -> ua.NodeId:
        return ua.NodeId(ua.String(path), ua.Int16(self.mf))

    def _name(self, name: str, ns: int | None = None) -> ua.QualifiedName:
        return ua.QualifiedName(name, self.pk if ns is None else ns)

    async def root(self) -> Node:
        """``Objects/PackMLObjects``, the entry point OPC 30050 names for a unit's PackML objects."""
        return await self.server.nodes.objects.add_folder(self._id("PackMLObjects"),
                                                           self._name("PackMLObjects"))

    async def packml_object(self, parent: Node, object_id: str, *, mode: int) -> PackMLNodes:
        """One PackML object (``Status``, ``Admin``, ``BaseStateMachine``) named ``object_id``."""
        obj = await parent.add_object(self._id(object_id), self._name(object_id, self.mf))
        out = PackMLNodes(obj)
        await obj.add_property(self._id(f"{object_id}.TagID"), self._name("TagID"), object_id)
        await obj.add_property(self._id(f"{object_id}.PackMLVersion"), self._name("PackMLVersion"),
                               PACKML_VERSION)
        for group, rows in (("Status", _STATUS), ("Admin", _ADMIN)):
            folder = await obj.add_object(self._id(f"{object_id}.{group}"), self._name(group))
            for name, value, vtype in rows:
                value = mode if name == "UnitModeCurrent" else value
                var = await folder.add_variable(self._id(f"{object_id}.{group}.{name}"), self._name(name),
                                                ua.Variant(value, vtype))
                out.variables[f"{group}.{name}"] = var
                out.types[f"{group}.{name}"] = vtype
        machine = await obj.add_object(self._id(f"{object_id}.BaseStateMachine"),
                                       self._name("BaseStateMachine"))
        current = await machine.add_variable(
            self._id(f"{object_id}.BaseStateMachine.CurrentState"), ua.QualifiedName("CurrentState", 0),
            ua.Variant(ua.LocalizedText("Undefined"), ua.VariantType.LocalizedText))
        number = await current.add_property(self._id(f"{object_id}.BaseStateMachine.CurrentState.Number"),
                                            ua.QualifiedName("Number", 0),
                                            ua.Variant(0, ua.VariantType.UInt32))
        out.variables["BaseStateMachine.CurrentState"] = current
        out.types["BaseStateMachine.CurrentState"] = ua.VariantType.LocalizedText
        out.variables["BaseStateMachine.CurrentState.Number"] = number
        out.types["BaseStateMachine.CurrentState.Number"] = ua.VariantType.UInt32
        out.variables["BaseStateMachine"] = machine
        return out

    async def commands(self, cell: PackMLNodes, object_id: str, commands: Iterable[Command],
                       callback: Callable[[Command], MethodCallback],
                       set_mode: MethodCallback) -> list[Node]:
        """The PackML command methods on the cell's ``BaseStateMachine`` and ``SetUnitMode`` on the cell.
        Each returns one output argument, ``Result`` (the engine's answer, or its refusal's message)."""
        machine = cell.variables["BaseStateMachine"]
        result = _argument("Result", ua.VariantType.String, "the state after the command, or why the "
                                                             "engine refused it")
        nodes = []
        for cmd in commands:
            name = model.method_name(cmd)
            nodes.append(await machine.add_method(self._id(f"{object_id}.BaseStateMachine.{name}"),
                                                  self._name(name), callback(cmd), [], [result]))
        mode = _argument("UnitMode", ua.VariantType.Int32, "1 Production, 2 Maintenance, 3 Manual")
        nodes.append(await cell.node.add_method(self._id(f"{object_id}.SetUnitMode"),
                                                self._name("SetUnitMode"), set_mode, [mode], [result]))
        return nodes


def _argument(name: str, vtype: ua.VariantType, text: str) -> ua.Argument:
    arg = ua.Argument()
    arg.Name = name
    arg.DataType = ua.NodeId(ua.Int32(vtype.value))
    arg.ValueRank = -1
    arg.Description = ua.LocalizedText(text)
    return arg
