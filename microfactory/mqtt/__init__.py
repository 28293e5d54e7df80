"""MQTT Sparkplug B events of the cell (off unless ``--mqtt HOST:PORT`` is given); see ``docs/mqtt.md``."""

from microfactory.mqtt.edge import EdgeNode, EdgeStats, publishing, start_edge_node
from microfactory.mqtt.options import MqttOptions

__all__ = ["EdgeNode", "EdgeStats", "MqttOptions", "publishing", "start_edge_node"]
