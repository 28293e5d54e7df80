"""Simulated backlit camera: renders parts from a drawing with known ground truth.

``SIMULATOR`` is the ``microfactory.simulators`` entry point for ``kind: camera, port: sim``; the
renderer (:func:`render`, :class:`Scene`, :func:`add_defect`, :func:`dot_grid`) is the plain API that
tests and ``benchmarks/vision.py`` use directly.
"""

from simulators.camera.render import Dust, Frame, Optics, Pose, Truth, dot_grid, render
from simulators.camera.scene import DEFECT_CLASSES, Scene, add_defect
from simulators.camera.sim import CameraSimulator, CameraSimulatorFactory, PartGenerator

SIMULATOR = CameraSimulatorFactory()

__all__ = ["DEFECT_CLASSES", "SIMULATOR", "CameraSimulator", "Dust", "Frame", "Optics", "PartGenerator",
           "Pose", "Scene", "Truth", "add_defect", "dot_grid", "render"]
