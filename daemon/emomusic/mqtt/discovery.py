"""Home Assistant MQTT discovery: one device with the entities a living room needs.

Messages are retained and re-sent whenever Home Assistant announces ``online`` on its
status topic, so entities come back after an HA restart without restarting the daemon.
"""

from __future__ import annotations

import json
from typing import Any

from emomusic import __version__
from emomusic.config.modalities import MODALITIES
from emomusic.config.music import MODES
from emomusic.labels import ALL_LABELS
from emomusic.mqtt.link import MqttSettings

PLAYER_STATES = ("playing", "paused", "idle", "error")
PLAYER_ATTRIBUTES = ("{{ {'title': value_json.title, 'artist': value_json.artist, 'track_valence': "
                     "value_json.track_valence, 'track_arousal': value_json.track_arousal, 'placement': "
                     "value_json.placement, 'queue': value_json.queue, 'target': value_json.target, "
                     "'error': value_json.error} | tojson }}")

# What HA needs at least, per component (checked by the tests).
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "sensor": ("state_topic", "unique_id", "name"),
    "select": ("command_topic", "options", "unique_id", "name"),
    "number": ("command_topic", "unique_id", "name"),
    "button": ("command_topic", "unique_id", "name"),
}


def discovery_messages(ms: MqttSettings) -> list[tuple[str, dict[str, Any]]]:
    """(topic, payload) pairs for every entity, under ``<discovery_prefix>/<component>/<device>/<object>/config``."""
    dev = ms.device_id
    pre = ms.prefix
    device = {
        "identifiers": [f"emomusic_{dev}"],
        "name": f"{ms.device_name} {ms.room}" if ms.room else ms.device_name,  # unique, readable entity ids
        "manufacturer": "emomusic",
        "model": "emotion-aware music daemon",
        "sw_version": __version__,
    }
    if ms.room:
        device["suggested_area"] = ms.room
    common = {
        "availability_topic": f"{pre}/availability",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device,
    }
    state = f"{pre}/state"
    known = list(ALL_LABELS)
    emotion_only = "{{ value_json.emotion if value_json.emotion in " + json.dumps(known) + " else None }}"
    entities: list[tuple[str, str, dict[str, Any]]] = [
        ("sensor", "emotion", {
            "name": "Emotion",
            "state_topic": state,
            "value_template": emotion_only,
            "device_class": "enum",
            "options": known,
            "json_attributes_topic": state,
            "json_attributes_template": "{{ {'confidence': value_json.confidence, "
            "'probabilities': value_json.probabilities, 'modalities': value_json.modalities} | tojson }}",
            "icon": "mdi:emoticon-outline",
        }),
        ("sensor", "valence", {
            "name": "Valence",
            "state_topic": state,
            "value_template": "{{ value_json.valence }}",
            "state_class": "measurement",
            "icon": "mdi:emoticon-happy-outline",
        }),
        ("sensor", "arousal", {
            "name": "Arousal",
            "state_topic": state,
            "value_template": "{{ value_json.arousal }}",
            "state_class": "measurement",
            "icon": "mdi:lightning-bolt-outline",
        }),
        ("select", "mode", {
            "name": "Music mode",
            "command_topic": f"{pre}/mode/set",
            "state_topic": f"{pre}/mode",
            "options": list(MODES),
            "icon": "mdi:music-circle-outline",
        }),
        ("select", "fixed_mood", {
            "name": "Fixed mood",
            "command_topic": f"{pre}/mood/set",
            "state_topic": f"{pre}/mood",
            "options": known,
            "icon": "mdi:palette-outline",
        }),
        ("select", "feeling", {
            # No state topic: HA shows the last choice; each choice is sent once, as a statement.
            "name": "How I feel",
            "command_topic": f"{pre}/feedback/set",
            "options": known,
            "icon": "mdi:account-heart-outline",
        }),
        ("sensor", "now_playing", {
            "name": "Now playing",
            "state_topic": f"{pre}/player",
            "value_template": "{{ value_json.title if value_json.title else 'nothing' }}",
            # HA drops an attribute named "state": the player's state is its own sensor below.
            "json_attributes_topic": f"{pre}/player",
            "json_attributes_template": PLAYER_ATTRIBUTES,
            "icon": "mdi:music",
        }),
        ("sensor", "player", {
            "name": "Player",
            "state_topic": f"{pre}/player",
            "value_template": "{{ value_json.state }}",
            "device_class": "enum",
            "options": list(PLAYER_STATES),
            "json_attributes_topic": f"{pre}/player",
            "json_attributes_template": PLAYER_ATTRIBUTES,
            "icon": "mdi:play-pause",
        }),
        ("number", "volume", {
            "name": "Volume",
            "command_topic": f"{pre}/volume/set",
            "state_topic": f"{pre}/volume",
            "min": 0,
            "max": 100,
            "step": 1,
            "unit_of_measurement": "%",
            "icon": "mdi:volume-high",
        }),
        ("button", "skip", {
            "name": "Skip track",
            "command_topic": f"{pre}/player/set",
            "payload_press": "skip",
            "icon": "mdi:skip-next",
        }),
        ("button", "like", {
            "name": "Like track",
            "command_topic": f"{pre}/player/set",
            "payload_press": "like",
            "icon": "mdi:thumb-up-outline",
        }),
        ("button", "dislike", {
            "name": "Dislike track",
            "command_topic": f"{pre}/player/set",
            "payload_press": "dislike",
            "icon": "mdi:thumb-down-outline",
        }),
        ("button", "pause", {
            "name": "Pause",
            "command_topic": f"{pre}/player/set",
            "payload_press": "pause",
            "icon": "mdi:pause",
        }),
        ("button", "play", {
            "name": "Play",
            "command_topic": f"{pre}/player/set",
            "payload_press": "play",
            "icon": "mdi:play",
        }),
    ]
    for m in MODALITIES.values():  # each sensed modality's own reading, from …/modality/<name> (the registry)
        if m.source is not None:
            entities.append(("sensor", f"{m.name}_emotion", {
                "name": f"{m.label} emotion",
                "state_topic": f"{pre}/modality/{m.name}",
                "value_template": emotion_only,
                "json_attributes_topic": f"{pre}/modality/{m.name}",
                "json_attributes_template": "{{ {'weight': value_json.weight, 'status': value_json.status, "
                "'detail': value_json.detail} | tojson }}",
                "icon": "mdi:eye-outline" if m.source == "camera" else "mdi:microphone-outline",
            }))
    out = []
    for component, obj, payload in entities:
        payload = {**payload, **common, "unique_id": f"emomusic_{dev}_{obj}"}
        out.append((f"{ms.mqtt.discovery_prefix}/{component}/emomusic_{dev}/{obj}/config", payload))
    if ms.house_base is not None:
        out.append(house_mood_entity(ms, ms.house_base))
    return out


def house_mood_entity(ms: MqttSettings, base: str) -> tuple[str, dict[str, Any]]:
    """One "House mood" sensor for the whole house: every daemon sends the same retained config, so Home
    Assistant sees one entity, fed by whichever daemon publishes the house mood."""
    slug = "".join(c if c.isalnum() else "_" for c in base)
    known = json.dumps(list(ALL_LABELS))
    state = f"{base}/house/state"
    return (f"{ms.mqtt.discovery_prefix}/sensor/emomusic_house_{slug}/mood/config", {
        "name": "House mood",
        "state_topic": state,
        "value_template": "{{ value_json.emotion if value_json.emotion in " + known + " else None }}",
        "json_attributes_topic": state,
        "json_attributes_template": "{{ {'room': value_json.room, 'confidence': value_json.confidence, "
        "'valence': value_json.valence, 'arousal': value_json.arousal, 'published_by': value_json.published_by} "
        "| tojson }}",
        "unique_id": f"emomusic_house_{slug}_mood",
        "device": {"identifiers": [f"emomusic_house_{slug}"], "name": "emomusic house", "manufacturer": "emomusic",
                   "model": "the rooms' emomusic daemons together", "sw_version": __version__},
        "icon": "mdi:home-heart",
    })
